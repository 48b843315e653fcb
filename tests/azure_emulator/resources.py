"""ARM resource envelopes shared by the route modules (ids, systemData, paged lists, LRO headers)."""

from __future__ import annotations

from datetime import datetime, timezone

from .routing import ServiceError, ok

PROVIDER = "Microsoft.MachineLearningServices"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def system_data(created: str | None = None) -> dict:
    created = created or now_iso()
    return {"createdAt": created, "createdBy": "emulator-client", "createdByType": "Application",
            "lastModifiedAt": created, "lastModifiedBy": "emulator-client", "lastModifiedByType": "Application"}


def ws_scope(state) -> str:
    emu = state.emulator
    return (f"/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/{PROVIDER}"
            f"/workspaces/{emu.workspace}")


def resource(rid: str, rtype: str, name: str, properties: dict, **extra) -> dict:
    body = {"id": rid, "name": name, "type": f"{PROVIDER}/{rtype}", "properties": properties,
            "systemData": extra.pop("systemData", None) or system_data()}
    body.update(extra)
    return body


def page(items: list) -> object:
    return ok({"value": items, "nextLink": None})


def check_workspace(state, params: dict) -> None:
    emu = state.emulator
    if params.get("subscriptionId") != emu.subscription_id:
        raise ServiceError(404, "SubscriptionNotFound", f"The subscription '{params.get('subscriptionId')}' could not be found.")
    if params.get("resourceGroupName", "").lower() != emu.resource_group.lower():
        raise ServiceError(404, "ResourceGroupNotFound", f"Resource group '{params.get('resourceGroupName')}' could not be found.")
    if params.get("workspaceName") not in (None, emu.workspace):
        raise ServiceError(404, "ResourceNotFound", f"Workspace '{params.get('workspaceName')}' not found.")


def lro_accepted(state, body: dict | None, op, *, status: int = 201, location: bool = False):
    """PUT/DELETE answer of a long-running operation: Azure-AsyncOperation (and Location) to poll."""
    url = f"{state.emulator.base_url}/_operations/{op.id}?api-version=2024-04-01"
    headers = {"Azure-AsyncOperation": url, **retry_after_headers(state.lro_retry_after)}
    if location:
        headers["Location"] = url + "&location=1"
    if body is None:
        from starlette.responses import Response

        return Response(status_code=status, headers=headers)
    return ok(body, status=status, headers=headers)


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """Whole seconds go in Retry-After (the SDK reads it as an int); sub-second waits, which speed up
    tests, in x-ms-retry-after-ms (azure-core honours it when Retry-After is absent)."""
    if seconds is None:
        return {}
    if float(seconds).is_integer() and seconds >= 1:
        return {"Retry-After": str(int(seconds))}
    return {"x-ms-retry-after-ms": str(int(round(float(seconds) * 1000)))}
