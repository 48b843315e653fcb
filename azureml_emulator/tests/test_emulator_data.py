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


# -- identity-based datastores: the user's own token on the blob ------------------------------------
def _blob_client(emu, blob: str, credential):
    from azure.storage.blob import BlobClient

    from azureml_emulator.routes_workspace import BLOB_CONTAINER

    account_url = f"https://{emu.storage_account}.blob.{emu.storage_suffix}"  # what the SDK builds
    return BlobClient(account_url, BLOB_CONTAINER, blob, credential=credential)


def test_identity_datastore_uploads_with_the_users_token_and_no_secrets(azure_emulator, client, tmp_path):
    """As recorded (tests/recordings/datastore_identity_based.json) the default datastore has no
    account key; the SDK then skips listSecrets and uploads with the MLClient's credential, which
    Azurite (--oauth basic) authenticates: issuer, audience https://storage.azure.com, lifetime."""
    from azure.ai.ml.entities import Data

    emu = azure_emulator
    emu.faults.identity_datastores = True
    sample = tmp_path / "identity.jsonl"
    sample.write_text('{"messages": [{"role": "user", "content": "identity"}]}\n')
    created = client.data.create_or_update(Data(name="identity", version="1", path=str(sample), type="uri_file"))
    assert created.path.endswith("identity.jsonl")
    assert any(b.endswith("/identity.jsonl") for b in emu.list_blobs())
    routes = [r["route"] for r in emu.requests()]
    assert "datastore_secrets" not in routes and "storage_denied" not in routes


def test_azurite_refuses_a_bearer_token_it_cannot_authenticate(azure_emulator):
    """The OAuth check is Azurite's own: a token for another audience is refused, as storage refuses a
    failed authentication (403 AuthenticationFailed, not the permission code)."""
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.identity import DefaultAzureCredential

    azure_emulator.wait_blob_ready()
    ml_token = DefaultAzureCredential().get_token("https://ml.azure.com/.default")

    class WrongAudience:
        def get_token(self, *scopes, **kwargs):
            return AccessToken(ml_token.token, ml_token.expires_on)

    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as err:
        _blob_client(azure_emulator, "x.txt", WrongAudience()).upload_blob(b"x")
    assert (err.value.status_code, err.value.error_code) == (403, "AuthenticationFailed")
    assert "Invalid token audience" in str(err.value)


@pytest.mark.parametrize("role, denied", [(None, ["HEAD", "GET", "PUT"]), ("Storage Blob Data Reader", ["PUT"])])
def test_a_missing_data_role_gets_azures_403(azure_emulator, role, denied):
    """Azurite never checks permission; the storage gate answers for the role as real storage does:
    403, x-ms-error-code AuthorizationPermissionMismatch, the XML error body (none on a HEAD)."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.wait_blob_ready()
    emu.faults.storage_data_role = role
    blob = _blob_client(emu, f"gate/{role}.txt", DefaultAzureCredential())
    answered = {}
    for method, call in (("HEAD", blob.get_blob_properties), ("GET", blob.download_blob),
                         ("PUT", lambda: blob.upload_blob(b"data"))):
        try:
            call()
            answered[method] = 201
        except ResourceNotFoundError as err:
            answered[method] = err.status_code
        except HttpResponseError as err:
            answered[method] = err.status_code
            assert err.error_code == "AuthorizationPermissionMismatch"
            assert err.response.headers["Content-Type"] == "application/xml"
            if method != "HEAD":
                assert "<Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to " \
                       "perform this operation using this permission." in err.response.text()
    assert sorted(m for m, status in answered.items() if status == 403) == sorted(denied)
    assert [r["method"] for r in emu.requests() if r["route"] == "storage_denied"] == denied
    assert not any(b.startswith("gate/") for b in emu.list_blobs())


def test_the_gate_forwards_sas_requests_unchanged(azure_emulator):
    """RBAC applies to tokens only: a SAS request through the gate reaches Azurite as it was."""
    from azure.storage.blob import BlobClient

    from azureml_emulator.routes_workspace import BLOB_CONTAINER, _container_sas

    emu = azure_emulator
    emu.wait_blob_ready()
    emu.faults.storage_data_role = None
    sas = _container_sas(emu.state, 1)
    url = f"https://{emu.storage_account}.blob.{emu.storage_suffix}/{BLOB_CONTAINER}/gate/sas.txt?{sas}"
    BlobClient.from_blob_url(url).upload_blob(b"through the gate")
    assert BlobClient.from_blob_url(url).download_blob().readall() == b"through the gate"
    assert [r["method"] for r in emu.requests() if r["route"] == "storage_forwarded"][:2] == ["PUT", "GET"]


def test_the_gates_403_replays_the_recorded_storage_error(azure_emulator):
    """The recorded 403 (tests/recordings/storage/, with its source): same status, content type, error
    code header, server and body, request id and time aside, for a token whose principal lacks the role."""
    import json
    import re
    from pathlib import Path

    import httpx
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.wait_blob_ready()
    emu.faults.storage_data_role = None
    entry = json.loads((Path(__file__).parent / "recordings/storage/blob_authorization_permission_mismatch.json")
                       .read_text())["Entries"][0]
    token = DefaultAzureCredential().get_token("https://storage.azure.com/.default").token
    with httpx.Client(proxy=emu.env["HTTPS_PROXY"], verify=str(emu.tls.ca_bundle)) as http:
        got = http.get(f"https://{emu.storage_account}.blob.{emu.storage_suffix}/?comp=list",
                       headers={"Authorization": f"Bearer {token}", "x-ms-version": "2025-11-05"})
    recorded = entry["ResponseHeaders"]
    assert got.status_code == entry["StatusCode"]
    for header in ("Content-Type", "Server", "x-ms-error-code"):
        assert got.headers[header] == recorded[header], header
    assert re.fullmatch(r"[0-9a-f-]{36}", got.headers["x-ms-request-id"])

    def masked(text: str) -> str:
        return re.sub(r"Time:[0-9T:.-]+Z", "Time:T", re.sub(r"RequestId:[0-9a-f-]{36}", "RequestId:R", text))

    assert got.content.startswith(b"\xef\xbb\xbf")  # storage's XML carries a UTF-8 BOM (see the recording)
    assert masked(got.content[3:].decode()) == masked(entry["ResponseBody"])
    assert int(got.headers["Content-Length"]) == int(recorded["Content-Length"])
