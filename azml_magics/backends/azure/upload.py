"""Training files as data assets named and versioned by their content, so each is uploaded once.

The notebook passes local paths to the job and the SDK uploads them on every submission; here each
file becomes ``azml-<file stem>`` version ``<sha256[:16]>`` and a second submission of the same bytes
finds that version and uploads nothing.

Today's workspaces' default datastores are identity-based (no account key): the SDK then uploads with
the user's own token, and storage answers 403 ``AuthorizationPermissionMismatch`` when that identity has
no data role on the account. That becomes one line naming the account and the ``az`` command to grant
the role; the Azure backend uploads before it creates a cluster, so nothing is created by then.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...errors import RemoteError
from ...waits import wait
from .remote import is_not_found, remote_error

DATA_ROLE = "Storage Blob Data Contributor"
_MISMATCH = "AuthorizationPermissionMismatch"
# the SDK's own rewording of that 403 (azure/ai/ml/_artifacts/_blob_storage_helper.py, check_blob_exists)
_SDK_MISMATCH = "You don't have permission to alter this storage account"


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
        with wait(f"Uploading {split} ({Path(path).name})"):
            client.data.create_or_update(asset)
    except Exception as err:
        if lacks_data_role(err):
            raise data_role_error(client, path) from None
        raise remote_error(err, f"upload {path}") from None
    return Uploaded(split, name, version, asset_uri(client, name, version), reused=False)


def upload_all(client, files: dict[str, str], progress: Callable[[str], None]) -> dict[str, Uploaded]:
    return {split: upload(client, split, path, progress) for split, path in files.items() if path}


def lacks_data_role(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps) is storage's 403 for an identity without a data role."""
    seen: BaseException | None = err
    for _ in range(10):
        if seen is None:
            return False
        text = str(seen)
        if getattr(seen, "error_code", None) == _MISMATCH or _MISMATCH in text or _SDK_MISMATCH in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def data_role_error(client, path: str | Path) -> RemoteError:
    """The one line for a missing data role: which identity, which account, the command that grants it."""
    account_id, account = _storage_account(client)
    principal = _principal_id(client)
    who = f"your identity (object id {principal})" if principal else "your identity"
    assignee = principal or "<your object id: az ad signed-in-user show --query id -o tsv>"
    return RemoteError(
        f"could not upload {Path(path).name}: {who} lacks {DATA_ROLE} on storage account {account} "
        f"(the workspace's datastore has no account key, so uploads use your own sign-in; storage answered "
        f"403 {_MISMATCH}); ask an owner of the account to grant it: az role assignment create --assignee "
        f'{assignee} --role "{DATA_ROLE}" --scope {account_id} (it can take a few minutes to apply)'
    )


def _storage_account(client) -> tuple[str, str]:
    """The workspace's storage account as (ARM id, name); the datastore's account name if the id is unknown."""
    try:
        account_id = client.workspaces.get(client.workspace_name).storage_account or ""
    except Exception:  # the line is still useful without the id
        account_id = ""
    name = account_id.rstrip("/").rpartition("/")[2]
    if not name:
        try:
            name = client.datastores.get_default().account_name
        except Exception:
            name = "<the workspace's storage account>"
    return account_id or f"<the ARM id of storage account {name}>", name


def _principal_id(client) -> str | None:
    """The object id (``oid``) in the user's storage token: who needs the role. Not a secret; the
    token itself is never kept or shown."""
    import base64
    import json

    try:
        token = client._credential.get_token("https://storage.azure.com/.default").token  # noqa: SLF001
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["oid"]) if claims.get("oid") else None
    except Exception:
        return None
