"""The system registry ``azureml``: discovery, models (by label and version), components."""

from __future__ import annotations

from . import catalog
from .resources import PROVIDER, page, resource, system_data
from .routing import Req, ServiceError, error_response, ok, route

REGISTRY_SUBSCRIPTION = "00000000-0000-4000-8000-00000000beef"
REGISTRY_RESOURCE_GROUP = "registry-builtin-prod-eastus-01"
REGION = "eastus"
SPEC_DATE = "2026-07-23T00:00:00Z"  # the azureml-assets commit the specs were copied from


@route("GET", "/registrymanagement/v1.0/registries/{registry}/discovery", "registry_discovery")
def registry_discovery(state, req: Req):
    name = req.params["registry"]
    if name != state.emulator.registry:
        return _not_found_registry(name)
    return ok({
        "registryName": name,
        "tenantId": "00000000-0000-4000-8000-0000000000aa",
        "primaryRegion": REGION,
        "regions": [REGION],
        "subscriptionId": REGISTRY_SUBSCRIPTION,
        "resourceGroup": REGISTRY_RESOURCE_GROUP,
        "workspaceName": None,
        "primaryRegionResourceProviderUri": f"{state.emulator.base_url}/",
    })


def _not_found_registry(name: str):
    return error_response(404, "RegistryNotFound", f"Registry {name} not found.")


# -- models and components (registry data plane, api-version 2021-10-01-dataplanepreview) ----------


_REG = ("/mferp/managementfrontend/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        f"/providers/{PROVIDER}/registries/{{registryName}}")


def _check_registry(state, params) -> None:
    if params["registryName"] != state.emulator.registry:
        raise ServiceError(404, "RegistryNotFound", f"Registry {params['registryName']} not found.")


def registry_model_version(state, entry: catalog.ModelSpec) -> dict:
    """A model version as the registry data plane answers it: field names as in the recorded GET
    (azure-sdk-assets, test_model.pyTestModeltest_crud_model_with_system_metadata.json), values from
    the published spec (tags as strings, isArchived, system metadata; see assets/azureml-assets/SOURCE.md)."""
    tags = entry.wire_tags()
    if state.faults.model_specific_defaults is not None:
        tags["model_specific_defaults"] = repr(dict(state.faults.model_specific_defaults))
    archived = entry.archived or bool(state.faults.archived)
    registry, name, version = state.emulator.registry, entry.name, entry.version
    props = {
        "description": entry.description,
        "tags": tags,
        "properties": {},
        "isArchived": archived,
        "isAnonymous": False,
        "flavors": {"python_function": {"data": {"loader_module": "mlflow.transformers"}},
                    "transformers": {"data": {"task": "chat-completion"}}},
        "modelType": "mlflow_model",
        "modelUri": f"azureml://registries/{registry}/models/{name}/versions/{version}",
        "originAssetId": None,
        "jobName": None,
        "intellectualProperty": None,
    }
    if not state.faults.registry_omits_system_metadata:
        props["system_metadata"] = entry.system_metadata
    # envelope as recorded: name = the model's name, type "models" (not an ARM resource type)
    return {"id": f"azureml://registries/{registry}/models/{name}/versions/{version}", "name": name,
            "type": "models", "properties": props, "systemData": system_data(SPEC_DATE)}


def _model_entries(state, params) -> list[catalog.ModelSpec]:
    _check_registry(state, params)
    entries = catalog.models().get(params["name"])
    if not entries:
        raise ServiceError(404, "UserError", f"Could not find asset with ID: azureml://registries/"
                           f"{params['registryName']}/models/{params['name']}")
    return entries


def _container_archived(state, entries) -> bool:
    return bool(state.faults.archived) or all(e.archived for e in entries)


@route("GET", _REG + "/models", "registry_models_list")
def registry_models(state, req: Req):
    """Model containers (no tags: a client reads the latest version for those); ActiveOnly (the SDK's
    default view) leaves archived models out."""
    _check_registry(state, req.params)
    # the SDK (1.35) sends the enum member's str(), e.g. 'ListViewType.ACTIVE_ONLY'; read both spellings
    view = req.query.get("listViewType", "ActiveOnly").split(".")[-1].replace("_", "").lower()
    registry = state.emulator.registry
    out = []
    for name, entries in catalog.models().items():
        archived = _container_archived(state, entries)
        if (view == "activeonly" and archived) or (view == "archivedonly" and not archived):
            continue
        out.append(resource(f"azureml://registries/{registry}/models/{name}", "registries/models", name, {
            "description": entries[-1].description, "tags": {}, "properties": {}, "isArchived": archived,
            "latestVersion": entries[-1].version, "nextVersion": str(int(entries[-1].version) + 1),
            "provisioningState": "Succeeded",
        }, systemData=system_data(SPEC_DATE)))
    return page(out)


@route("GET", _REG + "/models/{name}/versions", "registry_model_versions_list")
def registry_model_versions(state, req: Req):
    entries = list(reversed(_model_entries(state, req.params)))  # newest first
    if req.query.get("$orderBy", "").lower() == "createdtime asc":
        entries.reverse()
    top = int(req.query.get("$top", len(entries)))
    return page([registry_model_version(state, e) for e in entries[:top]])


@route("GET", _REG + "/models/{name}/versions/{version}", "registry_model_version_get")
def registry_model_get(state, req: Req):
    for entry in _model_entries(state, req.params):
        if entry.version == req.params["version"]:
            return ok(registry_model_version(state, entry))
    raise ServiceError(404, "UserError", f"Could not find asset with ID: azureml://registries/"
                       f"{req.params['registryName']}/models/{req.params['name']}/versions/{req.params['version']}")


def component_version(state, name: str, version: str) -> dict:
    spec = catalog.component_spec(name, version)
    return resource(
        f"azureml://registries/{state.emulator.registry}/components/{name}/versions/{version}", "registries/components/versions", version,
        {"description": spec.get("description", ""), "tags": {str(k): str(v) for k, v in (spec.get("tags") or {}).items()},
         "properties": {}, "isArchived": False, "isAnonymous": False, "componentSpec": spec, "provisioningState": "Succeeded"},
        systemData=system_data(SPEC_DATE),
    )


def _component_versions(state, params) -> list[str]:
    _check_registry(state, params)
    versions = catalog.component_versions(params["name"])
    if not versions:
        raise ServiceError(404, "UserError", f"Could not find asset with ID: azureml://registries/"
                           f"{params['registryName']}/components/{params['name']}")
    return versions


@route("GET", _REG + "/components/{name}/versions", "registry_component_versions_list")
def registry_component_versions(state, req: Req):
    versions = list(reversed(_component_versions(state, req.params)))
    top = int(req.query.get("$top", len(versions)))
    return page([component_version(state, req.params["name"], v) for v in versions[:top]])


@route("GET", _REG + "/components/{name}/versions/{version}", "registry_component_version_get")
def registry_component_get(state, req: Req):
    if req.params["version"] not in _component_versions(state, req.params):
        raise ServiceError(404, "UserError", f"Could not find asset with ID: azureml://registries/"
                           f"{req.params['registryName']}/components/{req.params['name']}/versions/{req.params['version']}")
    return ok(component_version(state, req.params["name"], req.params["version"]))


@route("GET", _REG + "/components/{name}", "registry_component_container_get")
def registry_component_container(state, req: Req):
    versions = _component_versions(state, req.params)
    return ok(resource(f"azureml://registries/{state.emulator.registry}/components/{req.params['name']}", "registries/components",
                            req.params["name"], {"latestVersion": versions[-1], "nextVersion": None,
                                                 "isArchived": False, "description": "", "tags": {}, "properties": {}}))


