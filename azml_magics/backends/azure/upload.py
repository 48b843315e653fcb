"""Training files as data assets named and versioned by their content, so each is uploaded once.

The notebook passes local paths to the job and the SDK uploads them on every submission; here each
file becomes ``azml-<file stem>`` version ``<sha256[:16]>`` and a second submission of the same bytes
finds that version and uploads nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .remote import is_not_found, remote_error


@dataclass
class Uploaded:
    split: str
    name: str
    version: str
    uri: str  # azureml://subscriptions/.../data/<name>/versions/<version>, what the job input points at
    reused: bool


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def asset_name(path: str | Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem).strip("-.") or "data"
    return f"azml-{stem}"[:200]


def asset_uri(client, name: str, version: str) -> str:
    """The long-form data asset URI (the service's own form; keeps the job -> data asset lineage)."""
    scope = client._operation_scope  # noqa: SLF001 - subscription / resource group of this client
    return (f"azureml://subscriptions/{scope.subscription_id}/resourcegroups/{scope.resource_group_name}"
            f"/workspaces/{client.workspace_name}/data/{name}/versions/{version}")


def upload(client, split: str, path: str, progress: Callable[[str], None]) -> Uploaded:
    """Find the data asset for this file's bytes, or create it (one upload)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    sha = file_hash(path)
    name, version = asset_name(path), sha[:16]
    try:
        client.data.get(name=name, version=version)
        progress(f"Data {split}: {name}:{version} is already in the workspace (same content), not uploaded again.")
        return Uploaded(split, name, version, asset_uri(client, name, version), reused=True)
    except Exception as err:
        if not is_not_found(err):
            raise remote_error(err, f"look up data asset {name}:{version}") from None
    progress(f"Uploading {split} ({Path(path).name}, {Path(path).stat().st_size:,} bytes) as {name}:{version} ...")
    asset = Data(
        name=name, version=version, path=str(path), type=AssetTypes.URI_FILE,
        description=f"{Path(path).name}, chat-completion training data (sha256 {sha})",
        tags={"split": split, "sha256": sha},
    )
    try:
        client.data.create_or_update(asset)
    except Exception as err:
        raise remote_error(err, f"upload {path}") from None
    return Uploaded(split, name, version, asset_uri(client, name, version), reused=False)


def upload_all(client, files: dict[str, str], progress: Callable[[str], None]) -> dict[str, Uploaded]:
    return {split: upload(client, split, path, progress) for split, path in files.items() if path}
