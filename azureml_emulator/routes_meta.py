"""Cloud metadata (sovereign-cloud discovery) and the Microsoft Entra token endpoints.

The metadata document has one cloud, shaped like ARM's ``/metadata/endpoints`` answer. The token
endpoint implements the client-credentials grant: any client id with the secret handed out in
``env`` gets an opaque bearer token (never logged in full).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from urllib.parse import parse_qs

from .routing import Req, error_response, ok, route

TOKEN_TENANT = "00000000-0000-4000-8000-0000000000aa"  # the tenant id every resource here names


@route("GET", "/metadata/endpoints", "cloud_metadata")
def cloud_metadata(state, req: Req):
    emu = state.emulator
    return ok([{
        "name": emu.cloud_name,
        "portal": "https://portal.emulator.localhost/",  # the SDK derives the ML audience from its suffix
        "resourceManager": f"{emu.base_url}/",
        "authentication": {
            "loginEndpoint": f"{emu.base_url}/",
            "audiences": [f"{emu.base_url}/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {"storage": emu.storage_suffix, "keyVaultDns": "vault.localhost"},
        "gallery": f"{emu.base_url}/gallery/",
        "graph": f"{emu.base_url}/graph/",
    }])


def _openid(state, tenant: str, v2: bool) -> dict:
    base = f"{state.emulator.base_url}/{tenant}"
    prefix = f"{base}/oauth2/v2.0" if v2 else f"{base}/oauth2"
    return {
        "token_endpoint": f"{prefix}/token",
        "authorization_endpoint": f"{prefix}/authorize",
        "device_authorization_endpoint": f"{prefix}/devicecode",
        "issuer": f"{base}/v2.0" if v2 else base,
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }


@route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", "openid_configuration")
def openid_v2(state, req: Req):
    return ok(_openid(state, req.params["tenant"], True))


@route("GET", "/{tenant}/.well-known/openid-configuration", "openid_configuration_adfs")
def openid_adfs(state, req: Req):
    return ok(_openid(state, req.params["tenant"], False))


@route("GET", "/common/discovery/instance", "instance_discovery")
def instance_discovery(state, req: Req):
    return ok({"tenant_discovery_endpoint": f"{state.emulator.base_url}/common/v2.0/.well-known/openid-configuration",
               "api-version": "1.1", "metadata": []})


def _token(state, req: Req):
    form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
    if form.get("grant_type") != "client_credentials":
        return error_response(400, "unsupported_grant_type", "Only client_credentials is emulated.")
    if form.get("client_secret") != "emulator-secret" or not form.get("client_id"):
        return ok({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
                   "error_codes": [7000215]}, status=401)
    scope = (form.get("scope") or form.get("resource") or "").split()[0] if (form.get("scope") or form.get("resource")) else ""
    token = _jwt(scope.removesuffix("/.default").removesuffix(".default"), form["client_id"])
    state.tokens.add(token)
    return ok({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
               "expires_on": int(time.time()) + 3599, "access_token": token})


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _jwt(audience: str, client_id: str) -> str:
    """An access token shaped like Entra's v1 tokens (the SDK reads ``aud`` and ``tid`` from it,
    unverified; Azurite's ``--oauth basic`` checks ``iss`` is ``https://sts.windows.net/<tenant>/``, ``aud``
    ``https://storage.azure.com`` and the lifetime). The signature is random bytes: good only here."""
    now = int(time.time())
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TOKEN_TENANT}/",
              "iat": now, "nbf": now, "exp": now + 3599, "appid": client_id, "oid": str(uuid.UUID(int=9)),
              "tid": TOKEN_TENANT, "sub": client_id, "jti": secrets.token_hex(8)}
    header = {"alg": "RS256", "typ": "JWT", "kid": "emulator"}
    return f"{_b64(header)}.{_b64(claims)}.{secrets.token_urlsafe(32)}"


route("POST", "/{tenant}/oauth2/v2.0/token", "token")(_token)
route("POST", "/{tenant}/oauth2/token", "token_v1")(_token)
