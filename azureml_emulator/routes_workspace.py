"""Workspace-scoped ARM routes: workspace + discovery, computes and VM sizes, datastores,
models (data assets: routes_data), and the long-running-operation status URL.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone


from .routing import Req, ServiceError, ok, route
from .resources import (
    LOCATION, PROVIDER, check_workspace, lro_accepted, now_iso, page, resource, retry_after_headers, system_data,
    ws_scope,
)

WS = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
      f"{PROVIDER}/workspaces/{{workspaceName}}")
WORKSPACE_ID = "5f1c7a52-1d2b-4e35-9a7b-0e1a2b3c4d5e"
BLOB_CONTAINER = f"azureml-blobstore-{WORKSPACE_ID}"

# name, vCPUs, GPUs, memory GB: the sizes the notebook and the allow lists name, plus CPU sizes.
VM_SIZES = [
    ("Standard_DS3_v2", "standardDSv2Family", 4, 0, 14.0), ("Standard_D12_v2", "standardDv2Family", 4, 0, 28.0),
    ("Standard_NC6s_v3", "standardNCSv3Family", 6, 1, 112.0), ("Standard_NC12s_v3", "standardNCSv3Family", 12, 2, 224.0),
    ("Standard_NC24s_v3", "standardNCSv3Family", 24, 4, 448.0), ("Standard_NC24rs_v3", "standardNCSv3Family", 24, 4, 448.0),
    ("Standard_ND40rs_v2", "standardNDSv2Family", 40, 8, 672.0), ("Standard_NC4as_T4_v3", "standardNCASv3_T4Family", 4, 1, 28.0),
    ("Standard_NC24ads_A100_v4", "standardNCADSA100v4Family", 24, 1, 220.0),
    ("Standard_NC48ads_A100_v4", "standardNCADSA100v4Family", 48, 2, 440.0),
    ("Standard_NC96ads_A100_v4", "standardNCADSA100v4Family", 96, 4, 880.0),
    ("Standard_ND96asr_v4", "standardNDASv4_A100Family", 96, 8, 900.0),
    ("Standard_ND96amsr_A100_v4", "standardNDAMSv4_A100Family", 96, 8, 1924.0),
]
# Retired sizes: Microsoft retired Standard_NC6s_v3, NC12s_v3 and NC24s_v3 (NCv3, V100) on 2025-09-30
# (MicrosoftDocs/azure-docs, articles/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement.md). A retired size
# is no longer offered, so the region's size list leaves it out and a create is refused as for any size the
# region does not offer (how Azure words that refusal for a retired size is not published).
RETIRED_SIZES = {"Standard_NC6s_v3": "2025-09-30", "Standard_NC12s_v3": "2025-09-30", "Standard_NC24s_v3": "2025-09-30"}


def offered(size: str) -> bool:
    retired = RETIRED_SIZES.get(size)
    return retired is None or datetime.now(timezone.utc).date().isoformat() < retired


VM_SIZE_NAMES = {v[0].lower(): v[0] for v in VM_SIZES}


# -- workspace ---------------------------------------------------------------------------------------
def workspace_body(state) -> dict:
    emu = state.emulator
    rg = f"/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers"
    return resource(ws_scope(state), "workspaces", emu.workspace, {
        "friendlyName": emu.workspace, "description": "Azure ML emulator workspace",
        "storageAccount": f"{rg}/Microsoft.Storage/storageAccounts/{emu.storage_account}",
        "keyVault": f"{rg}/Microsoft.Keyvault/vaults/kv-emulator",
        "applicationInsights": f"{rg}/Microsoft.insights/components/ai-emulator",
        "discoveryUrl": f"{emu.base_url}/discovery",
        "mlFlowTrackingUri": tracking_uri(state),
        "workspaceId": WORKSPACE_ID, "provisioningState": "Succeeded", "hbiWorkspace": False,
        "publicNetworkAccess": "Enabled", "storageHnsEnabled": False, "v1LegacyMode": False,
        "tenantId": "00000000-0000-4000-8000-0000000000aa", "enableDataIsolation": False,
    }, location=LOCATION, kind="Default", tags={},
        identity={"type": "SystemAssigned", "principalId": str(uuid.UUID(int=7)),
                  "tenantId": "00000000-0000-4000-8000-0000000000aa"},
        sku={"name": "Basic", "tier": "Basic"})


def tracking_uri(state) -> str:
    """The workspace's MLflow tracking URI: Azure's ``azureml://<region>.api.azureml.ms/mlflow/v1.0/<ws
    scope>`` with the emulator as the host (its https form is the MLflow REST root, routes_mlflow.py)."""
    return f"azureml://{state.emulator.base_url.removeprefix('https://')}/mlflow/v1.0{ws_scope(state)}"


@route("GET", WS, "workspace_get")
def workspace_get(state, req: Req):
    check_workspace(state, req.params)
    return ok(workspace_body(state))


@route("GET", "/discovery", "workspace_discovery")
def workspace_discovery(state, req: Req):
    base = state.emulator.base_url
    return ok({"api": base, "catalog": base, "experimentation": base, "history": base, "modelmanagement": base,
               "pipelines": base, "studio": f"{base}/studio", "gremlin": base, "gremlinv2": base})


_LOCATIONS = "/subscriptions/{subscriptionId}/providers/" + PROVIDER + "/locations/{location}"


@route("GET", _LOCATIONS + "/computeOperationsStatus/{opId}", "operation_status")
@route("GET", _LOCATIONS + "/mfeOperationsStatus/{opId}", "operation_status")
@route("GET", "/_operations/{opId}", "operation_status")  # the first pass's URL, kept for old pollers
def operation_status(state, req: Req):
    """ARM's async-operation status body (common-types OperationStatusResult); InProgress carries
    Retry-After. ``?location=1`` on the old URL behaves like the result URL below."""
    status = state.operation_status(req.params["opId"])
    if status is None:
        raise ServiceError(404, "NotFound", f"Operation {req.params['opId']} not found.")
    if req.query.get("location"):
        return _operation_result(state, status)
    running = status not in ("Succeeded", "Failed", "Canceled")
    headers = retry_after_headers(state.lro_retry_after) if running else None
    body = {"id": req.path, "name": req.params["opId"], "status": status, "startTime": now_iso()}
    if status == "Succeeded":
        body.update(endTime=now_iso(), percentComplete=100.0)
    elif "mfeOperationsStatus" in req.path:
        # a running workspace operation, as recorded (recordings/endpoint_create_lro.json)
        body.update(endTime="0001-01-01T00:00:00+00:00", percentComplete=0.0)
    return ok(body, headers=headers)


@route("GET", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/" + PROVIDER
       + "/locations/{location}/mfeOperationResults/{opId}", "operation_result")
def operation_result(state, req: Req):
    """The Location URL: 202 while the operation runs, then 200 (delete and cancel have no body)."""
    status = state.operation_status(req.params["opId"])
    if status is None:
        raise ServiceError(404, "NotFound", f"Operation {req.params['opId']} not found.")
    return _operation_result(state, status)


def _operation_result(state, status: str):
    from starlette.responses import Response

    if status not in ("Succeeded", "Failed", "Canceled"):
        return Response(status_code=202, headers=retry_after_headers(state.lro_retry_after))
    return ok({}, status=200)


# -- computes ----------------------------------------------------------------------------------------
def _compute_body(state, name: str, record: dict) -> dict:
    props = record["properties"]
    aml = props.get("properties") or {}
    scale = aml.get("scaleSettings") or {}
    return resource(f"{ws_scope(state)}/computes/{name}", "workspaces/computes", name, {
        "computeType": "AmlCompute", "computeLocation": LOCATION, "description": props.get("description"),
        "provisioningState": record["provisioningState"], "createdOn": record["created"],
        "modifiedOn": record["created"], "resourceId": None, "provisioningErrors": None,
        "isAttachedCompute": False, "disableLocalAuth": True,
        "properties": {
            "vmSize": record["vmSize"], "vmPriority": aml.get("vmPriority", "Dedicated"),
            "scaleSettings": {"maxNodeCount": scale.get("maxNodeCount", 1), "minNodeCount": scale.get("minNodeCount", 0),
                              "nodeIdleTimeBeforeScaleDown": scale.get("nodeIdleTimeBeforeScaleDown", "PT2M")},
            "osType": "Linux", "remoteLoginPortPublicAccess": aml.get("remoteLoginPortPublicAccess", "NotSpecified"),
            "allocationState": "Steady", "allocationStateTransitionTime": record["created"], "errors": None,
            "currentNodeCount": 0, "targetNodeCount": 0,
            "nodeStateCounts": {"idleNodeCount": 0, "runningNodeCount": 0, "preparingNodeCount": 0,
                                "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0},
            "enableNodePublicIp": aml.get("enableNodePublicIp", True), "isolatedNetwork": False,
            "propertyBag": None,
        },
    }, location=LOCATION, tags=record.get("tags") or {})


@route("GET", WS + "/computes/{name}", "compute_get")
def compute_get(state, req: Req):
    check_workspace(state, req.params)
    record = state.computes.get(req.params["name"])
    if record is None:
        raise ServiceError(404, "NotFound", f"Compute {req.params['name']} not found in workspace "
                           f"{state.emulator.workspace}.")
    return ok(_compute_body(state, req.params["name"], record))


@route("GET", WS + "/computes", "compute_list")
def compute_list(state, req: Req):
    check_workspace(state, req.params)
    return page([_compute_body(state, n, r) for n, r in state.computes.items()])


@route("PUT", WS + "/computes/{name}", "compute_create")
def compute_create(state, req: Req):
    check_workspace(state, req.params)
    body = req.json if isinstance(req.json, dict) else {}
    props = body.get("properties") or {}
    if props.get("computeType") != "AmlCompute":
        raise ServiceError(400, "BadArgument", f"Compute type {props.get('computeType')!r} is not supported here; "
                           "use AmlCompute.")
    aml = props.get("properties") or {}
    size = VM_SIZE_NAMES.get(str(aml.get("vmSize", "")).lower())
    if size is None or not offered(size):
        raise ServiceError(400, "BadArgument", f"The specified vm size {aml.get('vmSize')} is not supported "
                           f"in region {LOCATION}.")
    name = req.params["name"]
    _check_quota(state, size)
    record = {"properties": props, "vmSize": size, "created": now_iso(), "provisioningState": "Creating",
              "tags": body.get("tags")}
    state.computes[name] = record

    def done():
        record["provisioningState"] = "Succeeded"

    op = state.new_operation(done)
    return lro_accepted(state, _compute_body(state, name, record), op, kind="compute",
                        api_version=req.query.get("api-version"))


@route("DELETE", WS + "/computes/{name}", "compute_delete")
def compute_delete(state, req: Req):
    """Long-running; ``underlyingResourceAction`` (Delete or Detach) is required, as on the service."""
    check_workspace(state, req.params)
    name = req.params["name"]
    record = state.computes.get(name)
    if record is None:
        raise ServiceError(404, "NotFound", f"Compute {name} not found in workspace {state.emulator.workspace}.")
    action = req.query.get("underlyingResourceAction", "")
    if action not in ("Delete", "Detach"):
        raise ServiceError(400, "BadArgument", "underlyingResourceAction must be Delete or Detach.")
    record["provisioningState"] = "Deleting"
    op = state.new_operation(lambda: state.computes.pop(name, None))
    return lro_accepted(state, None, op, status=202, location=True, kind="compute",
                        api_version=req.query.get("api-version"))


def _family_of(size: str) -> tuple[str, int]:
    entry = next(v for v in VM_SIZES if v[0] == size)
    return entry[1], entry[2]


def _family_usage(state, family: str) -> tuple[int, int]:
    """(vCPUs in use, limit) for a VM family: in use = the min nodes of this workspace's clusters of that
    family; the limit is the fault ``quota`` (family -> vCPUs), else 1000 (no ground truth for a default)."""
    used = 0
    for record in state.computes.values():
        fam, cpus = _family_of(record["vmSize"])
        if fam == family:
            scale = ((record["properties"].get("properties") or {}).get("scaleSettings") or {})
            used += cpus * int(scale.get("minNodeCount", 0) or 0)
    limit = (state.faults.quota or {}).get(family, 1000)
    return used, int(limit)


def _check_quota(state, size: str) -> None:
    """A cluster one node of which does not fit in the family's free vCPUs is refused at create, with the
    text users quote from the service (dotnet/machinelearning-modelbuilder#2140; status and code not
    published there: 400 UserError is this emulator's choice)."""
    family, cpus = _family_of(size)
    used, limit = _family_usage(state, family)
    if limit - used < cpus:
        label = "Standard " + family[len("standard"):-len("Family")] + " family"
        raise ServiceError(400, "UserError", (
            f"The specified subscription has a {label} vCPU quota of {limit} and cannot accomodate for at least 1 "
            f"requested managed compute nodes which maps to {cpus} vCPUs. Talk to your Subscription Admin or refer "
            "to https://docs.microsoft.com/azure/machine-learning/how-to-manage-quotas#request-quota-increases to "
            "increase the family quota"))


@route("GET", "/subscriptions/{subscriptionId}/providers/" + PROVIDER + "/locations/{location}/usages", "usages")
def usages(state, req: Req):
    """``compute.list_usage``: one Usage per VM family (field names from the SDK's Usage/UsageName models;
    the id and type strings are not verified against a recording)."""
    out = []
    for family in sorted({v[1] for v in VM_SIZES}):
        used, limit = _family_usage(state, family)
        out.append({"id": f"/subscriptions/{req.params['subscriptionId']}/providers/{PROVIDER}/locations/"
                          f"{req.params['location']}/usages/{family}",
                    "amlWorkspaceLocation": req.params["location"], "type": f"{PROVIDER}/vmFamily/usages",
                    "unit": "Count", "currentValue": used, "limit": limit,
                    "name": {"value": family, "localizedValue": family}})
    return page(out)


@route("GET", "/subscriptions/{subscriptionId}/providers/" + PROVIDER + "/locations/{location}/vmSizes", "vm_sizes")
def vm_sizes(state, req: Req):
    return ok({"value": [
        {"name": n, "family": fam, "vCPUs": cpu, "gpus": gpu, "osVhdSizeMB": 1047552,
         "maxResourceVolumeMB": 344064, "memoryGB": mem, "lowPriorityCapable": True, "premiumIO": True,
         "supportedComputeTypes": ["AmlCompute", "ComputeInstance"]}
        for n, fam, cpu, gpu, mem in VM_SIZES if offered(n)]})


# -- datastores --------------------------------------------------------------------------------------
def _datastore_body(state, name: str) -> dict:
    emu = state.emulator
    return resource(f"{ws_scope(state)}/datastores/{name}", "workspaces/datastores", name, {
        "datastoreType": "AzureBlob", "accountName": emu.storage_account,
        "containerName": BLOB_CONTAINER, "endpoint": emu.storage_suffix,
        "protocol": "https", "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
        "credentials": ({"credentialsType": "None"} if state.faults.identity_datastores else
                        {"credentialsType": "AccountKey", "secrets": {"secretsType": "AccountKey"}}),
        "isDefault": name == "workspaceblobstore", "description": None, "tags": {}, "properties": {},
        "subscriptionId": emu.subscription_id, "resourceGroup": emu.resource_group,  # as recorded
    })


DATASTORES = ("workspaceblobstore", "workspaceartifactstore")


@route("GET", WS + "/datastores", "datastore_list")
def datastore_list(state, req: Req):
    check_workspace(state, req.params)
    items = [_datastore_body(state, n) for n in DATASTORES]
    if req.query.get("isDefault", "").lower() == "true":
        items = [i for i in items if i["properties"]["isDefault"]]
    return page(items)


@route("GET", WS + "/datastores/{name}", "datastore_get")
def datastore_get(state, req: Req):
    check_workspace(state, req.params)
    if req.params["name"] not in DATASTORES:
        raise ServiceError(404, "UserError", f"Datastore {req.params['name']} not found.")
    return ok(_datastore_body(state, req.params["name"]))


@route("POST", WS + "/datastores/{name}/listSecrets", "datastore_secrets")
def datastore_secrets(state, req: Req):
    check_workspace(state, req.params)
    state.emulator.wait_blob_ready()
    if req.params["name"] not in DATASTORES:
        raise ServiceError(404, "UserError", f"Datastore {req.params['name']} not found.")
    if state.faults.identity_datastores:  # recorded: tests/recordings/datastore_identity_based.json
        raise ServiceError(400, "UserError", "No secrets for credentials of type None.")
    body = req.json if isinstance(req.json, dict) else {}
    if body.get("expirableSecret"):
        return ok({"secretsType": "Sas", "sasToken": _container_sas(state, float(body.get("expireAfterHours") or 1))})
    return ok({"secretsType": "AccountKey", "key": state.emulator.storage_account_key})


def _container_sas(state, hours: float) -> str:
    """A real container SAS signed with the Azurite account key, as the service hands out."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        account_name=state.emulator.storage_account, container_name=BLOB_CONTAINER,
        account_key=state.emulator.storage_account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True, add=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=hours))


# -- versioned assets (data: routes_data.py, models below) ---------------------------------------------------------------------------------
def _versioned(state, kind: str, name: str, version: str, props: dict) -> dict:
    return resource(f"{ws_scope(state)}/{kind}/{name}/versions/{version}", f"workspaces/{kind}/versions",
                    version, props, systemData=props.pop("_systemData", None))


def _get_versioned(state, req: Req, store: dict, label: str):
    check_workspace(state, req.params)
    item = store.get(req.params["name"], {}).get(req.params["version"])
    if item is None:
        raise ServiceError(404, "UserError", f"Could not find {label} {req.params['name']}:{req.params['version']}.")
    return ok(item)


def _store_versioned(state, req: Req, store: dict, kind: str, props: dict):
    props.setdefault("isArchived", False)
    props.setdefault("isAnonymous", False)
    if kind == "models":  # data versions carry no provisioningState at the SDK's api-version
        props["provisioningState"] = "Succeeded"
    existing = store.get(req.params["name"], {}).get(req.params["version"])
    if existing is not None and kind == "models":
        # recorded: re-PUT of an existing model version (archive, restore, tags) updates it and answers 200,
        # keeping its creation time (recordings/workspace_model_versions.json)
        created = existing["systemData"]["createdAt"]
        props["_systemData"] = {**system_data(), "createdAt": created}
    body = _versioned(state, kind, req.params["name"], req.params["version"], props)
    store.setdefault(req.params["name"], {})[req.params["version"]] = body
    if existing is not None and kind == "models":
        return ok(body, status=200)
    return ok(body, status=201, headers={"Location": f"{state.emulator.base_url}{req.path}?api-version={req.query.get('api-version', '')}"})


# -- workspace models --------------------------------------------------------------------------------
@route("GET", WS + "/models/{name}/versions/{version}", "model_get")
def model_get(state, req: Req):
    from .finetuning_jobs import register_outputs

    register_outputs(state)
    return _get_versioned(state, req, state.models, "model")


@route("GET", WS + "/models/{name}/versions", "model_versions_list")
def model_versions(state, req: Req):
    check_workspace(state, req.params)
    from .finetuning_jobs import register_outputs

    register_outputs(state)
    name = req.params["name"]
    if name not in state.models:
        # recorded: a model container that does not exist is a 404, not an empty list
        # (recordings/workspace_model_versions.json)
        raise ServiceError(404, "UserError", "The specified resource was not found.", details=[
            {"code": "ModelNotFound", "message": f"Model container with name: {name} not found.",
             "details": [], "additionalInfo": []}])
    items = list(state.models[name].values())
    items.sort(key=lambda b: b["systemData"]["createdAt"], reverse=True)
    return page(items[: int(req.query.get("$top", len(items) or 1))])


@route("PUT", WS + "/models/{name}/versions/{version}", "model_create")
def model_create(state, req: Req):
    check_workspace(state, req.params)
    props = dict((req.json or {}).get("properties") or {})
    uri = props.get("modelUri") or ""
    _check_model_uri(state, uri)
    props.setdefault("flavors", {"python_function": {"data": {"loader_module": "mlflow.transformers"}}})
    # the fields a recorded workspace model version carries (recordings/workspace_model_versions.json)
    for key in ("description", "autoDeleteSetting", "jobName", "intellectualProperty"):
        props.setdefault(key, None)
    props["stage"] = "Archived" if props.get("isArchived") else (props.get("stage") or "Development")
    return _store_versioned(state, req, state.models, "models", props)


def _check_model_uri(state, uri: str) -> None:
    """``azureml://jobs/<job>/outputs/<output>`` must name a completed job's declared output."""
    if not uri:
        raise ServiceError(400, "UserError", "modelUri is required.")
    if uri.startswith("azureml://jobs/"):
        parts = uri[len("azureml://jobs/"):].split("/")
        job = state.jobs.get(parts[0])
        if job is None:
            raise ServiceError(404, "UserError", f"Job {parts[0]} not found; cannot register {uri}.")
        output = parts[2] if len(parts) > 2 and parts[1] == "outputs" else ""
        if output not in (job.body.get("properties", {}).get("outputs") or {}):
            raise ServiceError(400, "UserError", f"Job {parts[0]} has no output named {output!r}.")
        if job.state(time.time()) != "Completed":
            raise ServiceError(400, "UserError", f"Job {parts[0]} is not Completed; its outputs do not exist yet.")


