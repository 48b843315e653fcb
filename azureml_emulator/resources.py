"""ARM resource envelopes shared by the route modules (ids, systemData, paged lists, LRO headers)."""

from __future__ import annotations

from datetime import datetime, timezone

from .routing import ServiceError, ok

PROVIDER = "Microsoft.MachineLearningServices"
LOCATION = "eastus"  # the workspace's region


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
    """One page of an ARM list; the last page has no ``nextLink`` (the specs do not allow null)."""
    return ok({"value": items})


def check_workspace(state, params: dict) -> None:
    emu = state.emulator
    if params.get("subscriptionId") != emu.subscription_id:
        raise ServiceError(404, "SubscriptionNotFound", f"The subscription '{params.get('subscriptionId')}' could not be found.")
    if params.get("resourceGroupName", "").lower() != emu.resource_group.lower():
        raise ServiceError(404, "ResourceGroupNotFound", f"Resource group '{params.get('resourceGroupName')}' could not be found.")
    if params.get("workspaceName") not in (None, emu.workspace):
        raise ServiceError(404, "ResourceNotFound", f"Workspace '{params.get('workspaceName')}' not found.")


def operation_urls(state, op, *, kind: str = "mfe", api_version: str | None = None) -> tuple[str, str]:
    """(Azure-AsyncOperation, Location) URLs shaped like ARM's for Azure ML: computes poll
    ``locations/<region>/computeOperationsStatus/<id>``, workspace resources (endpoints, deployments,
    jobs) ``mfeOperationsStatus/<id>`` and fetch their final result from ``mfeOperationResults/<id>``
    (the shapes in the REST specs' examples)."""
    emu = state.emulator
    query = f"?api-version={api_version or '2023-04-01-preview'}"
    sub = f"{emu.base_url}/subscriptions/{emu.subscription_id}"
    status = f"{sub}/providers/{PROVIDER}/locations/{LOCATION}/{kind}OperationsStatus/{op.id}{query}"
    result = (f"{sub}/resourceGroups/{emu.resource_group}/providers/{PROVIDER}/locations/{LOCATION}"
              f"/mfeOperationResults/{op.id}{query}")
    return status, result


def lro_accepted(state, body: dict | None, op, *, status: int = 201, location: bool = False, kind: str = "mfe",
                 api_version: str | None = None):
    """PUT/DELETE answer of a long-running operation: Azure-AsyncOperation (and Location) to poll."""
    status_url, result_url = operation_urls(state, op, kind=kind, api_version=api_version)
    headers = {"Azure-AsyncOperation": status_url, **retry_after_headers(state.lro_retry_after)}
    if location:
        headers["Location"] = result_url
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
