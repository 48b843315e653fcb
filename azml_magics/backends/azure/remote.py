"""Service errors as one line: what we were doing, the service's own code and message."""

from __future__ import annotations

import re

from ...errors import AzmlError, NotFound, RemoteError

_SECRETish = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|((?:key|token|sig|secret)=)[^&\s\"']+")


def scrub(text: str) -> str:
    """Remove anything that looks like a token or key from a message before it is shown."""
    return _SECRETish.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


def text(value: object) -> str:
    """An SDK enum (``JobStatus.COMPLETED``) or string as the service's plain word (``Completed``)."""
    return str(getattr(value, "value", value) or "")


def _service_message(err: Exception) -> tuple[str | None, str]:
    code = None
    inner = getattr(err, "error", None)
    if inner is not None:
        code = getattr(inner, "code", None)
        message = getattr(inner, "message", None)
        if message:
            return code, str(message)
    message = getattr(err, "message", None) or str(err)
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), type(err).__name__)
    match = re.match(r"\(([A-Za-z0-9_.]+)\)\s*(.*)", first)
    if match:
        return code or match.group(1), match.group(2)
    return code, first


def is_not_found(err: Exception) -> bool:
    name = type(err).__name__
    status = getattr(err, "status_code", None)
    return name == "ResourceNotFoundError" or status == 404


def remote_error(err: Exception, doing: str) -> AzmlError:
    """An AzmlError for ``err``, raised while trying to ``doing``."""
    if isinstance(err, AzmlError):
        return err
    name = type(err).__name__
    if name in ("ClientAuthenticationError", "CredentialUnavailableError"):
        return RemoteError(
            f"could not {doing}: authentication failed ({scrub(_service_message(err)[1])}); "
            "sign in (az login) or pick another --credential."
        )
    code, message = _service_message(err)
    status = getattr(err, "status_code", None)
    where = f"{code}: " if code else (f"HTTP {status}: " if status else "")
    cls = NotFound if is_not_found(err) else RemoteError
    return cls(f"could not {doing}: {where}{scrub(message)}")
