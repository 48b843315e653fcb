"""Regenerate the vendored REST-spec subsets in this folder from a checkout of Azure/azure-rest-api-specs.

    python azureml_emulator/specs/vendor_specs.py /path/to/azure-rest-api-specs

Run by hand (never by tests). For each api-version in ``OPERATIONS`` it finds each operation by its
operationId in that version's swagger files, keeps its 200/201/202 response schemas and every definition
they reach ($refs across files, polymorphic subtypes listed in ``SUBTYPES``), renames definitions to
``<file>:<Name>`` so one self-contained JSON file per api-version holds them, and writes
``<api-version>.json``. See SOURCE.md for what was taken from where.
"""

from __future__ import annotations

import json
import posixpath
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ML = "specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices"

# api-version -> (folder, operationIds)
OPERATIONS: dict[str, tuple[str, list[str]]] = {
    "2022-02-01-preview": ("preview/2022-02-01-preview", [
        "OnlineEndpoints_CreateOrUpdate", "OnlineEndpoints_Get", "OnlineEndpoints_List", "OnlineEndpoints_ListKeys",
        "OnlineDeployments_List", "OnlineDeployments_Get",
    ]),
    "2023-04-01-preview": ("preview/2023-04-01-preview", [
        "OnlineEndpoints_Get", "OnlineDeployments_CreateOrUpdate", "OnlineDeployments_Get",
        "DataVersions_CreateOrUpdate", "DataVersions_Get", "DataVersions_List", "DataContainers_List",
        "DataContainers_Get",
    ]),
    "2023-08-01-preview": ("preview/2023-08-01-preview", [
        "Workspaces_Get", "Compute_Get", "Compute_CreateOrUpdate", "Compute_List", "VirtualMachineSizes_List",
        "ModelVersions_CreateOrUpdate", "ModelVersions_Get", "ModelVersions_List",
        "RegistryModelContainers_List", "RegistryModelVersions_Get", "RegistryModelVersions_List",
        "RegistryComponentVersions_Get",
        "RegistryComponentVersions_List", "RegistryComponentContainers_Get",
    ]),
    "2024-01-01-preview": ("preview/2024-01-01-preview", [
        "Jobs_CreateOrUpdate", "Jobs_Get", "Jobs_List",
        "ServerlessEndpoints_CreateOrUpdate", "ServerlessEndpoints_Get", "ServerlessEndpoints_List",
        "ServerlessEndpoints_ListKeys", "MarketplaceSubscriptions_CreateOrUpdate", "MarketplaceSubscriptions_Get",
        "MarketplaceSubscriptions_List",
    ]),
    "2024-04-01-preview": ("preview/2024-04-01-preview", [
        "Workspaces_Get", "Datastores_Get", "Datastores_List", "Datastores_ListSecrets",
    ]),
}
# ARM's async-operation status body (common types), for the Azure-AsyncOperation polls.
COMMON_EXTRA = [("specification/common-types/resource-management/v5/types.json", "OperationStatusResult")]

# Polymorphic subtypes the emulator answers with (the others, e.g. AutoML jobs, are left out).
SUBTYPES = {
    "AmlCompute", "PipelineJob", "AzureBlobDatastore", "AccountKeyDatastoreCredentials",
    "AccountKeyDatastoreSecrets", "SasDatastoreSecrets", "UriFileDataVersion", "UriFolderDataVersion",
    "MLTableData", "ManagedOnlineDeployment", "DefaultScaleSettings", "LiteralJobInput", "UriFileJobInput",
    "UriFolderJobInput", "MLFlowModelJobInput", "CustomModelJobInput", "MLTableJobInput",
    "MLFlowModelJobOutput", "UriFolderJobOutput", "UriFileJobOutput", "CustomModelJobOutput",
    "NoneDatastoreCredentials", "FineTuningJob", "CustomModelFineTuning",
}


def _key(path: str, name: str) -> str:
    stem = path.split("/resource-management/")[-1] if "common-types" in path else posixpath.basename(path)
    return f"{stem.replace('/', '-')}:{name}"


class Vendor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, dict] = {}
        self.definitions: dict[str, dict] = {}
        self.pending: list[tuple[str, str]] = []

    def load(self, path: str) -> dict:
        if path not in self.files:
            self.files[path] = json.loads((self.root / path).read_text())
        return self.files[path]

    def rewrite(self, node, path: str):
        """Copy NODE with every $ref turned into ``#/definitions/<file>:<Name>`` (queued for copying)."""
        if isinstance(node, list):
            return [self.rewrite(n, path) for n in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                target, _, pointer = v.partition("#")
                target_path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target)) if target else path
                name = pointer.rsplit("/", 1)[-1]
                if not pointer.startswith("/definitions/"):
                    raise ValueError(f"unsupported $ref {v} in {path}")
                self.queue(target_path, name)
                out[k] = f"#/definitions/{_key(target_path, name)}"
            elif k == "x-ms-examples":
                continue
            else:
                out[k] = self.rewrite(v, path)
        return out

    def queue(self, path: str, name: str) -> None:
        key = _key(path, name)
        if key not in self.definitions and (path, name) not in self.pending:
            self.pending.append((path, name))

    def drain(self) -> None:
        while self.pending:
            path, name = self.pending.pop()
            key = _key(path, name)
            if key in self.definitions:
                continue
            spec = self.load(path)
            self.definitions[key] = self.rewrite(spec["definitions"][name], path)
            if "discriminator" in spec["definitions"][name]:
                for sub, body in spec["definitions"].items():
                    refs = [r.get("$ref", "") for r in body.get("allOf", [])]
                    if sub in SUBTYPES and any(r.endswith(f"/definitions/{name}") for r in refs):
                        self.queue(path, sub)

    def operation(self, folder: str, op_id: str) -> dict:
        base = f"{ML}/{folder}"
        for file in sorted((self.root / base).glob("*.json")):
            path = f"{base}/{file.name}"
            for route, methods in self.load(path).get("paths", {}).items():
                for method, op in methods.items():
                    if isinstance(op, dict) and op.get("operationId") == op_id:
                        responses = {code: self.rewrite(r["schema"], path) for code, r in op["responses"].items()
                                     if code in ("200", "201", "202") and "schema" in r}
                        return {"file": file.name, "method": method.upper(), "path": route, "responses": responses}
        raise KeyError(f"{op_id} not in {base}")


def main(root: Path) -> None:
    for version, (folder, op_ids) in OPERATIONS.items():
        vendor = Vendor(root)
        operations = {op_id: vendor.operation(folder, op_id) for op_id in op_ids}
        for path, name in COMMON_EXTRA:
            vendor.queue(path, name)
            operations.setdefault("AsyncOperation_Status", {
                "file": path, "method": "GET", "path": "(Azure-AsyncOperation URL)",
                "responses": {"200": {"$ref": f"#/definitions/{_key(path, name)}"}}})
        vendor.drain()
        out = {"api-version": version, "source": f"Azure/azure-rest-api-specs {ML}/{folder}",
               "operations": operations, "definitions": dict(sorted(vendor.definitions.items()))}
        (HERE / f"{version}.json").write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
        print(version, len(operations), "operations", len(vendor.definitions), "definitions")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
