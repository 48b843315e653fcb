"""Data assets through the SDK: create, get by name and version (404 when absent, so a backend naming
assets by content hash finds an existing one instead of uploading twice), latest label, lists."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.azure


@pytest.fixture
def client(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    return MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)


def test_find_by_content_hash_or_upload_once(azure_emulator, client, tmp_path):
    from azure.ai.ml.entities import Data
    from azure.core.exceptions import ResourceNotFoundError

    sample = tmp_path / "train.jsonl"
    sample.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    name = "train-sft-9f86d081"
    with pytest.raises(ResourceNotFoundError):
        client.data.get(name, version="1")
    created = client.data.create_or_update(Data(name=name, version="1", path=str(sample), type="uri_file"))
    assert created.path.startswith("azureml://") and created.path.endswith("train.jsonl")
    found = client.data.get(name, version="1")
    assert (found.name, found.version, found.path) == (name, "1", created.path)
    uploads = [r for r in azure_emulator.requests() if r["route"] == "datastore_secrets"]
    assert len(uploads) == 1  # one upload; the get needed none


def test_versions_latest_label_and_lists(client, tmp_path):
    from azure.ai.ml.entities import Data

    for version in ("1", "2"):
        path = tmp_path / f"v{version}.jsonl"
        path.write_text(f'{{"v": {version}}}\n')
        client.data.create_or_update(Data(name="ds", version=version, path=str(path), type="uri_file"))
    client.data.create_or_update(Data(name="other", version="7", path=str(path), type="uri_file"))
    assert client.data.get("ds", label="latest").version == "2"
    assert sorted(d.version for d in client.data.list(name="ds")) == ["1", "2"]
    assert sorted(d.name for d in client.data.list()) == ["ds", "other"]
    client.data.archive("ds", version="1")
    assert [d.version for d in client.data.list(name="ds")] == ["2"]  # ActiveOnly by default


def test_a_version_is_immutable(client, tmp_path):
    from azure.ai.ml.entities import Data
    from azure.core.exceptions import HttpResponseError

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("{}\n")
    second.write_text('{"other": 1}\n')
    client.data.create_or_update(Data(name="fixed", version="1", path=str(first), type="uri_file"))
    with pytest.raises(HttpResponseError, match="immutable"):
        client.data.create_or_update(Data(name="fixed", version="1", path=str(second), type="uri_file"))
