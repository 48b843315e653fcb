"""Errors a user can act on.

Every mistake a user can make (a typo in a parameter, a broken data row, a wrong VM size) is raised
as an :class:`AzmlError` with one line that says what is wrong and how to fix it. The magics turn it
into IPython's ``UsageError`` (no traceback); scripts get the exception itself.
"""

from __future__ import annotations


class AzmlError(Exception):
    """A problem the user can fix; the message is one line."""

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = " ".join(str(message).split("\n")).strip()
        self.hint = hint
        super().__init__(self.message if not hint else f"{self.message} {hint}")


class SpecError(AzmlError):
    """The fine-tune or deploy spec is wrong.

    ``path`` is the dotted key the error is about (``parameters.learning_rate``, ``data.fraction``,
    ``endpoint``), or None for the spec as a whole, so a form can mark the field without reading the
    message.
    """

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None):
        super().__init__(message, hint=hint)
        self.path = path


class DataError(AzmlError):
    """The training data is wrong."""


class BackendUnavailable(AzmlError):
    """A backend's optional dependencies are missing, or it is not installed."""


class NotConnected(AzmlError):
    """A magic needs a connected workspace."""


class NotFound(AzmlError):
    """A job, model or endpoint the user named does not exist."""


class RemoteError(AzmlError):
    """The service refused a request; the message carries the service's own text."""
