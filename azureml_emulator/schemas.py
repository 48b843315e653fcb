"""Validate the emulator's response bodies against the vendored Azure REST spec subsets (``specs/``).

Swagger 2.0 is turned into JSON Schema 2020-12 the way AutoRest reads it: ``x-nullable: true`` lets a
value be null (nothing else may be), a ``discriminator`` dispatches to the subtype named by the body's
discriminator value (``x-ms-discriminator-value``), ``readOnly`` fields are allowed (these are responses),
other ``x-ms-*`` extensions are ignored, and ``format`` is checked where jsonschema knows the format.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SPECS = Path(__file__).resolve().parent / "specs"

# (route name, api-version the SDK sends) -> (vendored spec file, operationId). Where the SDK's version
# is not in the public specs, the nearest published version stands in (see specs/SOURCE.md).
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("workspace_get", "2023-08-01-preview"): ("2023-08-01-preview", "Workspaces_Get"),
    ("workspace_get", "2024-10-01-preview"): ("2024-04-01-preview", "Workspaces_Get"),
    ("compute_get", "2023-08-01-preview"): ("2023-08-01-preview", "Compute_Get"),
    ("compute_create", "2023-08-01-preview"): ("2023-08-01-preview", "Compute_CreateOrUpdate"),
    ("compute_list", "2023-08-01-preview"): ("2023-08-01-preview", "Compute_List"),
    ("vm_sizes", "2023-08-01-preview"): ("2023-08-01-preview", "VirtualMachineSizes_List"),
    ("model_create", "2023-08-01-preview"): ("2023-08-01-preview", "ModelVersions_CreateOrUpdate"),
    ("model_get", "2023-08-01-preview"): ("2023-08-01-preview", "ModelVersions_Get"),
    ("model_versions_list", "2023-08-01-preview"): ("2023-08-01-preview", "ModelVersions_List"),
    # the registry data plane (2021-10-01-dataplanepreview) has no public spec; its bodies are the
    # registry-scoped ARM resources of the same names
    ("registry_models_list", "2021-10-01-dataplanepreview"): ("2023-08-01-preview", "RegistryModelContainers_List"),
    ("registry_model_version_get", "2021-10-01-dataplanepreview"): ("2023-08-01-preview", "RegistryModelVersions_Get"),
    ("registry_model_versions_list", "2021-10-01-dataplanepreview"): ("2023-08-01-preview", "RegistryModelVersions_List"),
    ("registry_component_version_get", "2021-10-01-dataplanepreview"):
        ("2023-08-01-preview", "RegistryComponentVersions_Get"),
    ("registry_component_versions_list", "2021-10-01-dataplanepreview"):
        ("2023-08-01-preview", "RegistryComponentVersions_List"),
    ("registry_component_container_get", "2021-10-01-dataplanepreview"):
        ("2023-08-01-preview", "RegistryComponentContainers_Get"),
    ("datastore_get", "2024-10-01-preview"): ("2024-04-01-preview", "Datastores_Get"),
    ("datastore_list", "2024-10-01-preview"): ("2024-04-01-preview", "Datastores_List"),
    ("datastore_secrets", "2024-10-01-preview"): ("2024-04-01-preview", "Datastores_ListSecrets"),
    ("data_create", "2023-04-01-preview"): ("2023-04-01-preview", "DataVersions_CreateOrUpdate"),
    ("data_get", "2023-04-01-preview"): ("2023-04-01-preview", "DataVersions_Get"),
    ("data_versions_list", "2023-04-01-preview"): ("2023-04-01-preview", "DataVersions_List"),
    ("data_list", "2023-04-01-preview"): ("2023-04-01-preview", "DataContainers_List"),
    ("data_container_get", "2023-04-01-preview"): ("2023-04-01-preview", "DataContainers_Get"),
    ("job_create", "2024-01-01-preview"): ("2024-01-01-preview", "Jobs_CreateOrUpdate"),
    ("job_get", "2024-01-01-preview"): ("2024-01-01-preview", "Jobs_Get"),
    ("job_list", "2024-01-01-preview"): ("2024-01-01-preview", "Jobs_List"),
    # FineTuning jobs: the SDK sends 2024-10-01-preview, not in the snapshot; 2024-01-01-preview has FineTuningJob
    ("job_create", "2024-10-01-preview"): ("2024-01-01-preview", "Jobs_CreateOrUpdate"),
    ("job_get", "2024-10-01-preview"): ("2024-01-01-preview", "Jobs_Get"),
    ("job_list", "2024-10-01-preview"): ("2024-01-01-preview", "Jobs_List"),
    ("serverless_endpoint_create", "2024-01-01-preview"): ("2024-01-01-preview", "ServerlessEndpoints_CreateOrUpdate"),
    ("serverless_endpoint_get", "2024-01-01-preview"): ("2024-01-01-preview", "ServerlessEndpoints_Get"),
    ("serverless_endpoint_list", "2024-01-01-preview"): ("2024-01-01-preview", "ServerlessEndpoints_List"),
    ("serverless_endpoint_keys", "2024-01-01-preview"): ("2024-01-01-preview", "ServerlessEndpoints_ListKeys"),
    ("marketplace_subscription_create", "2024-01-01-preview"):
        ("2024-01-01-preview", "MarketplaceSubscriptions_CreateOrUpdate"),
    ("marketplace_subscription_get", "2024-01-01-preview"): ("2024-01-01-preview", "MarketplaceSubscriptions_Get"),
    ("marketplace_subscription_list", "2024-01-01-preview"): ("2024-01-01-preview", "MarketplaceSubscriptions_List"),
    ("endpoint_create", "2022-02-01-preview"): ("2022-02-01-preview", "OnlineEndpoints_CreateOrUpdate"),
    ("endpoint_get", "2022-02-01-preview"): ("2022-02-01-preview", "OnlineEndpoints_Get"),
    ("endpoint_get", "2023-04-01-preview"): ("2023-04-01-preview", "OnlineEndpoints_Get"),
    ("endpoint_list", "2022-02-01-preview"): ("2022-02-01-preview", "OnlineEndpoints_List"),
    ("endpoint_keys", "2022-02-01-preview"): ("2022-02-01-preview", "OnlineEndpoints_ListKeys"),
    ("deployment_create", "2023-04-01-preview"): ("2023-04-01-preview", "OnlineDeployments_CreateOrUpdate"),
    ("deployment_get", "2023-04-01-preview"): ("2023-04-01-preview", "OnlineDeployments_Get"),
    ("deployment_get", "2022-02-01-preview"): ("2022-02-01-preview", "OnlineDeployments_Get"),
    ("deployment_list", "2022-02-01-preview"): ("2022-02-01-preview", "OnlineDeployments_List"),
    ("operation_status", "*"): ("2023-08-01-preview", "AsyncOperation_Status"),
}


def operation_for(route: str, api_version: str | None) -> tuple[str, str] | None:
    return OPERATIONS.get((route, api_version or "")) or OPERATIONS.get((route, "*"))


@lru_cache(maxsize=None)
def _spec(version: str) -> dict:
    return json.loads((SPECS / f"{version}.json").read_text())


def _convert(node):
    """Swagger 2.0 node -> JSON Schema 2020-12 node (x-nullable, no x-ms-*)."""
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items()
           if not k.startswith("x-") and k not in ("discriminator", "readOnly", "example")}
    if node.get("x-nullable") is True:
        return {"anyOf": [{"type": "null"}, out]}
    return out


@lru_cache(maxsize=None)
def _root(version: str) -> dict:
    """The spec's definitions as one JSON Schema document: inheritance (``allOf`` of a parent) flattened
    into one object, so ``additionalProperties: false`` sees inherited properties as AutoRest does, and
    each polymorphic base dispatching on its discriminator to the (flattened) subtypes."""
    spec = _spec(version)["definitions"]
    flat: dict[str, dict] = {}

    def flatten(name: str) -> dict:
        if name not in flat:
            body = spec[name]
            merged: dict = {"properties": {}, "required": []}
            closed = body.get("additionalProperties") is False
            for part in body.get("allOf", []):
                parent = flatten(part["$ref"].rsplit("/", 1)[1]) if "$ref" in part else part
                merged["properties"].update(parent.get("properties", {}))
                merged["required"] += parent.get("required", [])
                closed = closed or parent.get("additionalProperties") is False
            merged.update({k: v for k, v in body.items() if k not in ("allOf", "properties", "required")})
            merged["properties"].update(body.get("properties", {}))
            merged["required"] = sorted(set(merged["required"] + body.get("required", [])))
            if closed:
                merged["additionalProperties"] = False
            flat[name] = merged
        return flat[name]

    defs = {name: _convert(flatten(name)) for name in spec}
    for base, body in spec.items():
        prop = body.get("discriminator")
        if not prop:
            continue
        branches = {}
        for sub, sub_body in spec.items():
            if f"#/definitions/{base}" in [r.get("$ref") for r in sub_body.get("allOf", [])]:
                branches[sub_body.get("x-ms-discriminator-value") or sub.split(":", 1)[1]] = sub
        if branches:
            defs[base] = {"allOf": [{"properties": {prop: {"enum": sorted(branches)}}, "required": [prop]}] + [
                {"if": {"properties": {prop: {"const": v}}}, "then": {"$ref": f"#/definitions/{s}"}}
                for v, s in branches.items()]}
    return {"definitions": defs}


def validator(version: str, operation_id: str, status: int):
    """A jsonschema validator for OPERATION_ID's STATUS response in the vendored spec VERSION."""
    import jsonschema

    op = _spec(version)["operations"][operation_id]
    responses = op["responses"]
    schema = responses.get(str(status)) or responses.get("200") or responses.get("201")
    if schema is None:
        raise KeyError(f"{operation_id} has no response schema for {status}")
    document = dict(_root(version), **_convert(schema))
    return jsonschema.Draft202012Validator(document, format_checker=jsonschema.FormatChecker())


# Model-version properties the registry data plane has that the ARM stand-in spec lacks: originAssetId
# (in the recorded real GET, azure-sdk-assets .../model/e2etests/test_model.pyTestModeltest_crud_model_with_system_metadata.json)
# and system_metadata (the key the SDK itself writes, _restclient/model_dataplane/operations/_patch.py).
DATAPLANE_MODEL_EXTRAS = ("originAssetId", "system_metadata")


def _without_dataplane_extras(route: str, body):
    """A copy of a registry model-version body without DATAPLANE_MODEL_EXTRAS (other bodies unchanged)."""
    if route not in ("registry_model_version_get", "registry_model_versions_list") or not isinstance(body, dict):
        return body
    out = json.loads(json.dumps(body))
    for item in out.get("value", []) if route.endswith("_list") else [out]:
        for key in DATAPLANE_MODEL_EXTRAS:
            (item.get("properties") or {}).pop(key, None)
    return out


def errors(entry: dict) -> list[str]:
    """Why a response-log entry (``emu.responses()``) does not match its operation's schema ([] if it does)."""
    found = operation_for(entry["route"], entry["query"].get("api-version"))
    if found is None:
        raise KeyError(f"no spec operation for {entry['route']} at {entry['query'].get('api-version')}")
    check = validator(found[0], found[1], entry["status"])
    body = _without_dataplane_extras(entry["route"], entry["json"])
    return [f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message[:300]}"
            for e in check.iter_errors(body)]
