"""Long-running operations with ARM's URL shapes: computes poll ``computeOperationsStatus``, endpoints and
deployments ``mfeOperationsStatus``, deletes and cancels end at ``mfeOperationResults``; the SDK's
pollers follow them."""

from __future__ import annotations

import re
import time

import httpx
import pytest

pytestmark = pytest.mark.azure

LOCATIONS = r"/subscriptions/{sub}/{rg}providers/Microsoft\.MachineLearningServices/locations/eastus/"


def _pattern(emu, kind: str, with_rg: bool = False) -> re.Pattern:
    rg = f"resourceGroups/{emu.resource_group}/" if with_rg else ""
    return re.compile(re.escape(emu.base_url) + LOCATIONS.format(sub=emu.subscription_id, rg=rg)
                      + kind + r"/[0-9a-f-]{36}\?api-version=[0-9a-z-]+$")


def _client(emu):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)


def test_compute_create_polls_the_compute_operation_status_url(azure_emulator):
    from azure.ai.ml.entities import AmlCompute

    emu = azure_emulator
    emu.faults.lro_delay = 0.5
    _client(emu).compute.begin_create_or_update(AmlCompute(name="lro-c", size="Standard_NC24ads_A100_v4")).result()
    polls = [r["path"] for r in emu.requests() if r["route"] == "operation_status"]
    assert len(polls) >= 2 and all("/locations/eastus/computeOperationsStatus/" in p for p in polls)
    status = httpx.get(emu.base_url + polls[-1], verify=str(emu.tls.ca_bundle),
                       headers={"Authorization": "Bearer emulator-static-token"}).json()
    assert status["status"] == "Succeeded" and status["percentComplete"] == 100.0


def test_endpoint_create_and_delete_use_mfe_operation_urls(azure_emulator):
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    emu = azure_emulator
    client = _client(emu)
    url = (f"{emu.base_url}/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/"
           f"Microsoft.MachineLearningServices/workspaces/{emu.workspace}/onlineEndpoints/shape-ep"
           "?api-version=2022-02-01-preview")
    auth = {"Authorization": "Bearer emulator-static-token"}
    created = httpx.put(url, json={"location": "eastus", "properties": {"authMode": "Key"}}, headers=auth,
                        verify=str(emu.tls.ca_bundle))
    assert created.status_code == 201
    assert _pattern(emu, "mfeOperationsStatus").match(created.headers["Azure-AsyncOperation"])
    assert created.headers["Azure-AsyncOperation"].endswith("api-version=2022-02-01-preview")  # the request's

    emu.faults.lro_delay = 0.5
    deleted = httpx.delete(url, headers=auth, verify=str(emu.tls.ca_bundle))
    assert deleted.status_code == 202
    assert _pattern(emu, "mfeOperationsStatus").match(deleted.headers["Azure-AsyncOperation"])
    result_url = deleted.headers["Location"]
    assert _pattern(emu, "mfeOperationResults", with_rg=True).match(result_url)
    assert httpx.get(result_url, headers=auth, verify=str(emu.tls.ca_bundle)).status_code == 202  # still running
    time.sleep(0.6)
    assert httpx.get(result_url, headers=auth, verify=str(emu.tls.ca_bundle)).status_code == 200
    assert "shape-ep" not in emu.state.endpoints

    # and the SDK's poller follows the same URLs to the end
    client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="sdk-ep", auth_mode="key")).result()
    client.online_endpoints.begin_delete("sdk-ep").result()
    assert "sdk-ep" not in emu.state.endpoints
    polled = [r["path"] for r in emu.requests() if r["route"] == "operation_status"]
    assert polled and all("/mfeOperationsStatus/" in p for p in polled)


def test_job_cancel_answers_with_an_operation_result_location(azure_emulator):
    from azureml_emulator.tests.test_emulator_jobs import _body, _put

    emu = azure_emulator
    emu.faults.job_duration = 30.0
    assert _put(emu, "cancel-shape", _body()).status_code == 201
    url = (f"{emu.base_url}/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}/providers/"
           f"Microsoft.MachineLearningServices/workspaces/{emu.workspace}/jobs/cancel-shape/cancel"
           "?api-version=2024-01-01-preview")
    canceled = httpx.post(url, headers={"Authorization": "Bearer emulator-static-token"}, verify=str(emu.tls.ca_bundle))
    assert canceled.status_code == 202
    assert _pattern(emu, "mfeOperationResults", with_rg=True).match(canceled.headers["Location"])


def test_the_first_pass_operation_url_still_answers(azure_emulator):
    emu = azure_emulator
    with emu.state.lock:
        op = emu.state.new_operation()
    reply = httpx.get(f"{emu.base_url}/_operations/{op.id}", verify=str(emu.tls.ca_bundle),
                      headers={"Authorization": "Bearer emulator-static-token"})
    assert reply.json()["status"] == "Succeeded"


def test_compute_delete_is_a_polled_lro(azure_emulator):
    from azure.ai.ml.entities import AmlCompute

    emu = azure_emulator
    client = _client(emu)
    client.compute.begin_create_or_update(AmlCompute(name="to-delete", size="Standard_NC24ads_A100_v4")).result()
    emu.faults.lro_delay = 0.3
    poller = client.compute.begin_delete("to-delete")
    assert emu.state.computes["to-delete"]["provisioningState"] == "Deleting"
    poller.result()
    assert "to-delete" not in emu.state.computes
    sent = next(r for r in emu.requests() if r["route"] == "compute_delete")
    assert sent["query"]["underlyingResourceAction"] == "Delete"
