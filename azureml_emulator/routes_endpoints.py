"""Managed online endpoints and deployments (long-running create/update/delete) and keys; the scoring
URI they name is served by routes_scoring.py.
"""

from __future__ import annotations

import secrets
import uuid

from .routing import Req, ServiceError, ok, route
from .resources import check_workspace, lro_accepted, page, resource, ws_scope
from .routes_workspace import LOCATION, VM_SIZE_NAMES, WS

EP = WS + "/onlineEndpoints"


def _endpoint_body(state, name: str) -> dict:
    rec = state.endpoints[name]
    base = state.emulator.base_url
    creating = rec["provisioningState"] == "Creating"
    return resource(f"{ws_scope(state)}/onlineEndpoints/{name}", "workspaces/onlineEndpoints", name, {
        "authMode": rec["authMode"], "description": rec.get("description"), "properties": rec.get("properties") or {},
        "provisioningState": rec["provisioningState"],
        # recorded: an endpoint being created has no scoring or swagger URI yet (recordings/endpoint_create_lro.json)
        "scoringUri": None if creating else f"{base}/_score/{name}/score",
        "swaggerUri": None if creating else f"{base}/_score/{name}/swagger.json", "traffic": rec.get("traffic") or {},
        "mirrorTraffic": {}, "publicNetworkAccess": "Enabled", "compute": None,
    }, location=LOCATION, kind="Managed", tags=rec.get("tags") or {},
        identity={"type": "SystemAssigned", "principalId": str(uuid.UUID(int=11)),
                  "tenantId": "00000000-0000-4000-8000-0000000000aa"})


def _get_endpoint(state, name: str) -> dict:
    rec = state.endpoints.get(name)
    if rec is None:
        raise ServiceError(404, "UserError", f"Could not find online endpoint '{name}' in workspace "
                           f"{state.emulator.workspace}.")
    return rec


@route("PUT", EP + "/{name}", "endpoint_create")
def endpoint_create(state, req: Req):
    check_workspace(state, req.params)
    name = req.params["name"]
    props = ((req.json or {}).get("properties") or {})
    if props.get("authMode") not in ("Key", "AMLToken", "AADToken"):
        raise ServiceError(400, "BadArgument", f"authMode must be Key, AMLToken or AADToken, got {props.get('authMode')!r}.")
    traffic = props.get("traffic") or {}
    deployments = state.deployments.get(name, {})
    unknown = sorted(set(traffic) - set(deployments))
    if unknown:
        raise ServiceError(400, "BadArgument", f"Traffic names deployment(s) {unknown} that do not exist "
                           f"under endpoint {name}.")
    if traffic and sum(int(v) for v in traffic.values()) not in (0, 100):
        raise ServiceError(400, "BadArgument", "The sum of traffic values must be 0 or 100.")
    existing = state.endpoints.get(name)
    rec = existing or {"provisioningState": "Creating"}
    rec.update({"authMode": props["authMode"], "description": props.get("description"),
                "traffic": traffic, "tags": (req.json or {}).get("tags"), "properties": props.get("properties")})
    if existing is None:
        state.endpoints[name] = rec
        state.endpoint_keys[name] = (secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    else:
        rec["provisioningState"] = "Updating"

    def done():
        rec["provisioningState"] = "Succeeded"

    # recorded: the running operation reads Updating; the answer names the endpoint in Location and carries
    # x-ms-async-operation-timeout (recordings/endpoint_create_lro.json)
    op = state.new_operation(done, stuck=existing is None and state.faults.endpoint_stuck_creating,
                             running_status="Updating")
    response = lro_accepted(state, _endpoint_body(state, name), op, api_version=req.query.get("api-version"))
    response.headers["Location"] = f"{state.emulator.base_url}{req.path}?api-version={req.query.get('api-version', '')}"
    response.headers["x-ms-async-operation-timeout"] = "PT30M"
    return response


@route("GET", EP + "/{name}", "endpoint_get")
def endpoint_get(state, req: Req):
    check_workspace(state, req.params)
    _get_endpoint(state, req.params["name"])
    return ok(_endpoint_body(state, req.params["name"]))


@route("GET", EP, "endpoint_list")
def endpoint_list(state, req: Req):
    check_workspace(state, req.params)
    return page([_endpoint_body(state, n) for n in state.endpoints])


@route("DELETE", EP + "/{name}", "endpoint_delete")
def endpoint_delete(state, req: Req):
    check_workspace(state, req.params)
    name = req.params["name"]
    rec = _get_endpoint(state, name)
    rec["provisioningState"] = "Deleting"

    def done():
        state.endpoints.pop(name, None)
        state.endpoint_keys.pop(name, None)
        state.deployments.pop(name, None)

    op = state.new_operation(done)
    return lro_accepted(state, None, op, status=202, location=True, api_version=req.query.get("api-version"))


@route("POST", EP + "/{name}/listKeys", "endpoint_keys")
def endpoint_keys(state, req: Req):
    check_workspace(state, req.params)
    _get_endpoint(state, req.params["name"])
    primary, secondary = state.endpoint_keys[req.params["name"]]
    return ok({"primaryKey": primary, "secondaryKey": secondary})


# -- deployments -------------------------------------------------------------------------------------
def _deployment_body(state, endpoint: str, name: str) -> dict:
    rec = state.deployments[endpoint][name]
    return resource(f"{ws_scope(state)}/onlineEndpoints/{endpoint}/deployments/{name}",
                    "workspaces/onlineEndpoints/deployments", name,
                    {**rec["properties"], "provisioningState": rec["provisioningState"]},
                    location=LOCATION, kind="Managed", sku=rec["sku"], tags=rec.get("tags") or {})


@route("PUT", EP + "/{endpoint}/deployments/{name}", "deployment_create")
def deployment_create(state, req: Req):
    check_workspace(state, req.params)
    endpoint, name = req.params["endpoint"], req.params["name"]
    _get_endpoint(state, endpoint)
    body = req.json or {}
    props = dict(body.get("properties") or {})
    size = VM_SIZE_NAMES.get(str(props.get("instanceType", "")).lower())
    if size is None:
        raise ServiceError(400, "BadArgument", f"Instance type {props.get('instanceType')!r} is not supported "
                           "for managed online deployments.")
    _check_model(state, props.get("model") or "")
    # what the service fills in when the request leaves it out
    props.setdefault("scaleSettings", {"scaleType": "Default"})
    props.setdefault("requestSettings", {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1})
    for probe in ("livenessProbe", "readinessProbe"):
        props.setdefault(probe, {"initialDelay": "PT10S", "period": "PT10S", "timeout": "PT2S",
                                 "successThreshold": 1, "failureThreshold": 30})
    props.setdefault("endpointComputeType", "Managed")
    props.setdefault("appInsightsEnabled", False)
    props.setdefault("egressPublicNetworkAccess", "Enabled")
    rec = {"properties": props, "sku": body.get("sku") or {"name": "Default", "capacity": 1},
           "provisioningState": "Creating", "tags": body.get("tags")}
    state.deployments.setdefault(endpoint, {})[name] = rec

    def done():
        rec["provisioningState"] = "Succeeded"

    op = state.new_operation(done)
    return lro_accepted(state, _deployment_body(state, endpoint, name), op,
                        api_version=req.query.get("api-version"))


def _check_model(state, model: str) -> None:
    prefix = ws_scope(state) + "/models/"
    if model.startswith("azureml://registries/"):
        return
    if not model.startswith(prefix):
        raise ServiceError(400, "BadArgument", f"Model {model!r} is not a model asset id of this workspace.")
    name, _, version = model[len(prefix):].partition("/versions/")
    if version not in state.models.get(name, {}):
        raise ServiceError(404, "UserError", f"Model {name}:{version} not found.")


@route("GET", EP + "/{endpoint}/deployments/{name}", "deployment_get")
def deployment_get(state, req: Req):
    check_workspace(state, req.params)
    if req.params["name"] not in state.deployments.get(req.params["endpoint"], {}):
        raise ServiceError(404, "UserError", f"Deployment {req.params['name']} not found.")
    return ok(_deployment_body(state, req.params["endpoint"], req.params["name"]))


@route("GET", EP + "/{endpoint}/deployments", "deployment_list")
def deployment_list(state, req: Req):
    check_workspace(state, req.params)
    return page([_deployment_body(state, req.params["endpoint"], n)
                 for n in state.deployments.get(req.params["endpoint"], {})])
