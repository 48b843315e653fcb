"""Azure RBAC on blob requests made with a user's token, which Azurite does not check.

Azurite's ``--oauth basic`` authenticates a bearer token (issuer, audience, lifetime) but, as its README
says, never checks permission. Real storage also authorizes the token's principal against its data roles
(Storage Blob Data Reader: read; Contributor / Owner: read and write) and answers a principal without the
role with 403 ``AuthorizationPermissionMismatch``. While the fault ``storage_data_role`` is not a writing
role, the CONNECT proxy sends ``*.blob.localhost`` connections here (the emulator's own TLS port, its
certificate covers that host) instead of straight to Azurite; this gate answers what the role does not
allow and forwards everything else (SAS and shared-key requests are not RBAC-checked) to Azurite unchanged.

The refusal's shape is recorded real traffic: status 403, ``x-ms-error-code: AuthorizationPermissionMismatch``,
``Content-Type: application/xml`` and the XML error body ``<Error><Code>AuthorizationPermissionMismatch</Code>
<Message>This request is not authorized to perform this operation using this permission.\\nRequestId:...
\\nTime:...</Message></Error>`` (Azure/azure-sdk-for-js, sdk/storage/storage-blob/recordings/node/
shared_access_signature_sas_generation_nodejs_only/recording_generateaccountsasqueryparameters_should_not_
work_with_invalid_permission.js; the same code for a bearer token lacking the data role is quoted in
Azure-Samples/azure-search-openai-demo#2015). A HEAD gets the headers and no body, as HTTP requires.
"""

from __future__ import annotations

import codecs
import uuid
from datetime import datetime, timezone

WRITER_ROLES = ("Storage Blob Data Contributor", "Storage Blob Data Owner")
READER_ROLE = "Storage Blob Data Reader"
ROLES = (None, READER_ROLE, *WRITER_ROLES)
READS = ("GET", "HEAD")
DENIED_MESSAGE = "This request is not authorized to perform this operation using this permission."
_HOP_HEADERS = {b"connection", b"keep-alive", b"transfer-encoding", b"proxy-connection", b"upgrade"}


def allows(role: str | None, method: str) -> bool:
    """Whether a principal holding ``role`` on the account may make a blob request with ``method``."""
    return role in WRITER_ROLES or (role == READER_ROLE and method.upper() in READS)


def needs_gate(state) -> bool:
    """The proxy routes blob connections through the gate only while the role is not a writing one."""
    return state.faults.storage_data_role not in WRITER_ROLES


def denied_response(method: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    request_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    # storage's XML starts with a UTF-8 byte order mark: the recorded Content-Length (279) is the recorded
    # text (276 bytes, the BOM dropped by the recorder) plus its 3 bytes
    body = codecs.BOM_UTF8 + ('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch'
                              f"</Code><Message>{DENIED_MESSAGE}\nRequestId:{request_id}\nTime:{now}</Message>"
                              "</Error>").encode()
    headers = [(b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode()),
               (b"server", b"Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"),
               (b"x-ms-request-id", request_id.encode()), (b"x-ms-version", b"2025-11-05"),
               (b"x-ms-error-code", b"AuthorizationPermissionMismatch")]
    return 403, headers, (b"" if method.upper() == "HEAD" else body)


def is_storage_host(scope) -> bool:
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").rpartition(":")[0]
    return host.endswith(".blob.localhost")


class StorageGate:
    """ASGI wrapper: requests for ``<account>.blob.localhost`` are gated, the rest go to ``app``."""

    def __init__(self, app, state) -> None:
        self.app, self.state = app, state
        self._client = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not is_storage_host(scope):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method = scope["method"]
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        bearer = scheme.lower() == "bearer" and token in self.state.tokens
        self._log(method, scope, denied=bearer and not allows(self.state.faults.storage_data_role, method))
        if bearer and not allows(self.state.faults.storage_data_role, method):
            status, out_headers, out_body = denied_response(method)
        else:
            status, out_headers, out_body = await self._forward(scope, body)
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": out_body})

    def _log(self, method: str, scope, *, denied: bool) -> None:
        """Method and path only: a blob request's query may carry a SAS signature."""
        from .routing import Req

        self.state.log_request("storage_denied" if denied else "storage_forwarded",
                               Req(method, scope["path"], {}, {}, {}))

    async def _forward(self, scope, body: bytes):
        """The request as it came, to Azurite (same Host header, so it parses the account the same way)."""
        import ssl

        import httpx

        emu = self.state.emulator
        if self._client is None:
            verify = ssl.create_default_context(cafile=str(emu.tls.ca_bundle))
            self._client = httpx.AsyncClient(verify=verify, timeout=60, trust_env=False)
        url = f"https://127.0.0.1:{emu.azurite_port}{scope['raw_path'].decode('latin-1')}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_HEADERS]
        request = self._client.build_request(scope["method"], url, headers=headers, content=body)
        response = await self._client.send(request, stream=True)
        try:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        out = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_HEADERS]
        return response.status_code, out, raw
