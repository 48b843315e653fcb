"""The system registry ``azureml``: discovery, models (by label and version), components."""

from __future__ import annotations

from . import catalog
from .resources import PROVIDER, page, resource, system_data
from .routing import Req, ServiceError, error_response, ok, route

REGISTRY_SUBSCRIPTION = "00000000-0000-4000-8000-00000000beef"
REGISTRY_RESOURCE_GROUP = "registry-builtin-prod-eastus-01"
REGION = "eastus"


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


def registry_model_version(state, name: str, entry: dict) -> dict:
    tags = dict(entry["tags"])
    if state.faults.model_specific_defaults is not None:
        tags["model_specific_defaults"] = repr(dict(state.faults.model_specific_defaults))
    archived = bool(state.faults.archived)
    props = {"isArchived": archived, "isAnonymous": False, "stage": "Archived" if archived else "Active"}
    if name in catalog.DEPRECATION:
        props["deprecation"] = catalog.DEPRECATION[name]
    version = entry["version"]
    return resource(
        f"azureml://registries/{state.emulator.registry}/models/{name}/versions/{version}", "registries/models/versions", version,
        {
            "description": f"{name} is a lightweight, state-of-the-art open model from the Phi-3 family.",
            "tags": tags,
            "properties": {k: str(v) for k, v in props.items()},
            "isArchived": archived,
            "isAnonymous": False,
            "flavors": {"python_function": {"data": {"loader_module": "mlflow.transformers"}},
                        "transformers": {"data": {"task": "text-generation"}}},
            "modelType": "mlflow_model",
            "modelUri": f"azureml://registries/{state.emulator.registry}/models/{name}/versions/{version}",
            "jobName": None,
            "provisioningState": "Succeeded",
        },
        systemData=system_data(entry["created"]),
    )


def _model_entries(state, params) -> list[dict]:
    _check_registry(state, params)
    entries = catalog.MODELS.get(params["name"])
    if not entries:
        raise ServiceError(404, "UserError", f"Could not find asset with ID: azureml://registries/"
                           f"{params['registryName']}/models/{params['name']}")
    return entries


@route("GET", _REG + "/models", "registry_models_list")
def registry_models(state, req: Req):
    """Model containers (no tags: a client reads the latest version for those)."""
    _check_registry(state, req.params)
    archived = bool(state.faults.archived)
    view = req.query.get("listViewType", "ActiveOnly").lower()
    if (view == "activeonly" and archived) or (view == "archivedonly" and not archived):
        return page([])
    registry = state.emulator.registry
    return page([resource(f"azureml://registries/{registry}/models/{name}", "registries/models", name, {
        "description": f"{name} is a lightweight, state-of-the-art open model from the Phi-3 family.",
        "tags": {}, "properties": {}, "isArchived": archived, "latestVersion": entries[-1]["version"],
        "nextVersion": str(int(entries[-1]["version"]) + 1), "provisioningState": "Succeeded",
    }, systemData=system_data(entries[0]["created"])) for name, entries in catalog.MODELS.items()])


@route("GET", _REG + "/models/{name}/versions", "registry_model_versions_list")
def registry_model_versions(state, req: Req):
    entries = sorted(_model_entries(state, req.params), key=lambda e: e["created"], reverse=True)
    if req.query.get("$orderBy", "").lower() == "createdtime asc":
        entries.reverse()
    top = int(req.query.get("$top", len(entries)))
    return page([registry_model_version(state, req.params["name"], e) for e in entries[:top]])


@route("GET", _REG + "/models/{name}/versions/{version}", "registry_model_version_get")
def registry_model_get(state, req: Req):
    for entry in _model_entries(state, req.params):
        if entry["version"] == req.params["version"]:
            return ok(registry_model_version(state, req.params["name"], entry))
    raise ServiceError(404, "UserError", f"Could not find asset with ID: azureml://registries/"
                       f"{req.params['registryName']}/models/{req.params['name']}/versions/{req.params['version']}")


def component_version(state, name: str, version: str) -> dict:
    spec = dict(catalog.pipeline_component_spec())
    spec["version"] = version
    return resource(
        f"azureml://registries/{state.emulator.registry}/components/{name}/versions/{version}", "registries/components/versions", version,
        {"description": spec["description"], "tags": {"Preview": ""}, "properties": {},
         "isArchived": False, "isAnonymous": False, "componentSpec": spec, "provisioningState": "Succeeded"},
        systemData=system_data("2025-01-15T00:00:00Z" if version == "0.0.82" else "2024-11-01T00:00:00Z"),
    )


def _component_versions(state, params) -> list[str]:
    _check_registry(state, params)
    versions = catalog.COMPONENTS.get(params["name"])
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


