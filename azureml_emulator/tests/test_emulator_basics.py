"""The emulator itself: start time, serve.py, auth, the request log, HTTP faults, LROs, registry tags."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.azure

REPO = Path(__file__).resolve().parents[2]  # the folder that holds azureml_emulator/


def test_serve_py_prints_one_json_line_within_3s_and_stops_on_sigterm():
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "azureml_emulator.serve"], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        elapsed = time.monotonic() - started
        assert elapsed < 3.0, f"serve.py took {elapsed:.2f}s to answer"
        assert {"base_url", "ca_bundle", "env", "cloud_metadata", "subscription_id", "resource_group",
                "workspace", "registry"} <= set(info)
        assert info["base_url"].startswith("https://127.0.0.1:")
        meta = httpx.get(info["env"]["ARM_CLOUD_METADATA_URL"], verify=info["ca_bundle"]).json()
        assert meta[0]["name"] == info["env"]["AZUREML_CURRENT_CLOUD"]
        assert meta[0]["suffixes"]["storage"].startswith("localhost:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_default_azure_credential_gets_a_token_from_the_emulator(azure_emulator):
    from azure.identity import DefaultAzureCredential

    token = DefaultAzureCredential().get_token("https://management.azure.com/.default")
    assert token.token.count(".") == 2 and token.expires_on > time.time()
    routes = [r["route"] for r in azure_emulator.requests()]
    assert "token_v1" in routes or "token" in routes
    # the secret sent in the token request is not in the log
    assert "emulator-secret" not in json.dumps(azure_emulator.requests())


def test_unauthenticated_arm_call_is_refused(azure_emulator):
    emu = azure_emulator
    url = f"{emu.base_url}/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/" \
          f"Microsoft.MachineLearningServices/workspaces/{emu.workspace}"
    assert httpx.get(url, verify=str(emu.tls.ca_bundle)).status_code == 401
    ok = httpx.get(url, verify=str(emu.tls.ca_bundle), headers={"Authorization": "Bearer emulator-static-token"})
    assert ok.status_code == 200 and ok.json()["name"] == emu.workspace


def test_request_log_records_what_the_sdk_sent(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    registry = MLClient(DefaultAzureCredential(), registry_name="azureml")
    model = registry.models.get("Phi-4", label="latest")
    assert model.version == "8"  # the published spec's version
    assert model.id == "azureml://registries/azureml/models/Phi-4/versions/8"
    log = httpx.get(f"{azure_emulator.base_url}/_emulator/requests", verify=str(azure_emulator.tls.ca_bundle)).json()
    listed = [r for r in log if r["route"] == "registry_model_versions_list"]
    assert listed and listed[0]["query"]["$orderBy"] == "createdtime desc" and listed[0]["query"]["$top"] == "1"
    assert any(r["route"] == "registry_discovery" for r in log)


def test_registry_serves_the_published_specs_tags_as_strings_archived_flag_and_system_metadata(azure_emulator):
    import ast

    import yaml
    from azure.ai.ml import MLClient
    from azure.ai.ml.constants import ListViewType
    from azure.identity import DefaultAzureCredential

    from azureml_emulator.catalog import ASSETS

    registry = MLClient(DefaultAzureCredential(), registry_name="azureml")
    for spec_file in sorted(ASSETS.glob("models/*/spec.yaml")):
        spec = yaml.safe_load(spec_file.read_text())
        model = registry.models.get(spec["name"], label="latest")
        assert model.version == str(spec["version"])
        assert all(isinstance(v, str) for v in model.tags.values())  # tags are strings on the wire
        assert ast.literal_eval(model.tags["model_specific_defaults"]) == spec["tags"]["model_specific_defaults"]
        raw = registry.models._get(spec["name"], model.version).properties  # the body the SDK's Model drops
        assert raw["isArchived"] is bool(spec.get("isArchived", False))
        assert raw["system_metadata"] == spec["system_metadata"]
    active = {m.name for m in registry.models.list()}
    every = {m.name for m in registry.models.list(list_view_type="All")}
    assert every == {m.name for m in registry.models.list(list_view_type=ListViewType.ALL)}
    assert active == {"Phi-4"} and every == {"Phi-4", "Phi-3-mini-4k-instruct", "Phi-3-mini-128k-instruct",
                                             "Phi-3.5-mini-instruct"}
    httpx.post(f"{azure_emulator.base_url}/_emulator/faults", json={"registry_omits_system_metadata": True},
               verify=str(azure_emulator.tls.ca_bundle)).raise_for_status()
    assert "system_metadata" not in registry.models._get("Phi-4", "8").properties  # the recorded GET's shape


def test_components_come_from_the_published_yaml_both_versions_latest_is_newest(azure_emulator):
    import yaml
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    from azureml_emulator.catalog import ASSETS

    registry = MLClient(DefaultAzureCredential(), registry_name="azureml")
    latest = registry.components.get("chat_completion_pipeline", label="latest")
    assert latest.version == "0.0.82"
    older = registry.components.get("chat_completion_pipeline", version="0.0.80")
    published = yaml.safe_load((ASSETS / "components" / "chat_completion_pipeline-0.0.82.yaml").read_text())
    assert set(latest.inputs) == set(published["inputs"])
    assert set(latest.inputs) - set(older.inputs) == {"finetune_config_path", "trust_remote_code"}
    assert latest.inputs["num_nodes_finetune"].min == 1 and latest.inputs["batch_size"].min == 1
    assert set(latest.outputs) == {"pytorch_model_folder", "mlflow_model_folder"}


def test_429_with_retry_after_is_retried_by_the_sdk(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.http("workspace_get", status=429, retry_after=1, times=1)
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    started = time.monotonic()
    ws = client.workspaces.get(emu.workspace)
    assert ws.name == emu.workspace
    assert time.monotonic() - started >= 0.9  # it waited for Retry-After
    assert [r["route"] for r in emu.requests()].count("workspace_get") == 2


def test_500_beyond_retries_surfaces_the_service_error(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.core.exceptions import HttpResponseError
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.http("compute_get", status=500, retry_after=0.05, times=20)
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    with pytest.raises(HttpResponseError) as err:
        client.compute.get("anything")
    assert err.value.status_code == 500 and "InternalServerError" in str(err.value)


def test_compute_create_is_a_polled_lro_and_sizes_carry_gpus(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import AmlCompute
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    emu.faults.lro_delay = 0.5
    client = MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)
    poller = client.compute.begin_create_or_update(AmlCompute(name="lro-test", size="Standard_NC48ads_A100_v4",
                                                              max_instances=1))
    assert not poller.done()
    compute = poller.result()
    assert compute.provisioning_state == "Succeeded" and compute.size == "Standard_NC48ads_A100_v4"
    polls = [r for r in emu.requests() if r["route"] == "operation_status"]
    assert len(polls) >= 2
    sizes = {s.name: s.gpus for s in client.compute.list_sizes()}
    assert sizes["Standard_NC48ads_A100_v4"] == 2
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError, match="not supported"):
        client.compute.begin_create_or_update(AmlCompute(name="bad", size="Standard_Nope")).result()


def test_faults_endpoint_rejects_unknown_names(azure_emulator):
    r = httpx.post(f"{azure_emulator.base_url}/_emulator/faults", json={"archivd": True},
                   verify=str(azure_emulator.tls.ca_bundle))
    assert r.status_code == 400 and "archivd" in r.json()["error"]["message"]
