"""FineTuning jobs, marketplace subscriptions and serverless endpoints through the unmodified SDK: the
model-as-a-service flow of Azure/azureml-examples (create_finetuning_job -> jobs.create_or_update ->
the registered_model output -> ServerlessEndpoint -> keys -> /v1/chat/completions -> delete)."""

from __future__ import annotations

import time
import warnings

import httpx
import pytest

pytestmark = pytest.mark.azure
PHI4 = "azureml://registries/azureml/models/Phi-4/versions/8"
PHI3 = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15"


@pytest.fixture
def ml(azure_emulator):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    warnings.filterwarnings("ignore", message=".*experimental.*")
    emu = azure_emulator
    emu.faults.job_duration = 1.0
    return MLClient(DefaultAzureCredential(), emu.subscription_id, emu.resource_group, emu.workspace)


def _job(model=PHI4, **kw):
    from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job

    args = dict(task=FineTuningTaskType.CHAT_COMPLETION, training_data="azureml:train:1",
                validation_data="azureml:val:1", model=model, output_model_name_prefix="phi4-ft",
                hyperparameters={"learning_rate": "0.00002", "num_train_epochs": "1"}, name="ft-1",
                experiment_name="exp", display_name="d")
    args.update(kw)
    return create_finetuning_job(**args)


def _wait(ml, name, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = ml.jobs.get(name).status
        if status in ("Completed", "Failed", "Canceled"):
            return status
        time.sleep(0.3)
    raise AssertionError("job did not finish")


def test_serverless_flow_registers_the_output_and_serves_chat(ml, azure_emulator):
    from azure.ai.ml.entities import ServerlessEndpoint

    created = ml.jobs.create_or_update(_job())
    body = [r for r in azure_emulator.requests() if r["route"] == "job_create"][-1]["json"]["properties"]
    assert body["jobType"] == "FineTuning" and body["fineTuningDetails"]["taskType"] == "chatCompletion"  # as sent
    assert ml.jobs.get(created.name).task == "chatCompletion"  # answered as the spec's ChatCompletion, read back
    assert "resources" not in body and "computeId" not in body  # serverless: no compute at all
    assert created.status in ("NotStarted", "Queued", "Running")
    assert _wait(ml, created.name) == "Completed"
    out_name = ml.jobs.get(created.name).outputs["registered_model"].name
    model = ml.models.get(out_name, version="1")
    assert model.name == "phi4-ft" and model.job_name == created.name

    ws = ml.workspaces.get(ml.workspace_name)
    model_id = f"azureml://locations/{ws.location}/workspaces/{ws._workspace_id}/models/{out_name}/versions/1"
    endpoint = ml.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="phi4-ft-ep", model_id=model_id)).result()
    assert endpoint.provisioning_state == "succeeded" and endpoint.scoring_uri
    key = ml.serverless_endpoints.get_keys("phi4-ft-ep").primary_key
    url = f"{ml.serverless_endpoints.get('phi4-ft-ep').scoring_uri}/v1/chat/completions"
    ca = str(azure_emulator.tls.ca_bundle)
    payload = {"max_tokens": 16, "messages": [{"role": "user", "content": "hello there"}]}
    r = httpx.post(url, json=payload, headers={"Authorization": key}, verify=ca)  # as the notebook sends it
    assert r.status_code == 200 and "hello there" in r.json()["choices"][0]["message"]["content"]
    assert httpx.post(url, json=payload, headers={"Authorization": "wrong"}, verify=ca).status_code == 401
    ml.serverless_endpoints.begin_delete("phi4-ft-ep").result()
    assert "phi4-ft-ep" not in azure_emulator.state.serverless_endpoints


def test_managed_compute_job_sends_instance_types_and_checks_them(ml, azure_emulator):
    from azure.core.exceptions import HttpResponseError

    azure_emulator.faults.job_duration = 60.0  # still running when it is canceled, however slow the machine
    job = ml.jobs.create_or_update(_job(instance_types=["Standard_NC24ads_A100_v4"], job_tier="Standard", name="ft-2"))
    body = azure_emulator.state.jobs[job.name].body["properties"]
    assert body["resources"]["instanceTypes"] == ["Standard_NC24ads_A100_v4"]
    assert body["queueSettings"]["jobTier"] == "Standard"
    with pytest.raises(HttpResponseError, match="not offered"):
        ml.jobs.create_or_update(_job(instance_types=["Standard_Imaginary_v9"], name="ft-3"))
    ml.jobs.begin_cancel(job.name).result()
    assert _wait(ml, job.name) == "Canceled"
    assert "phi4-ft" not in azure_emulator.state.models  # a canceled job registers nothing


@pytest.mark.parametrize("kw, text", [
    ({"model": "azureml://registries/azureml/models/No-Such-Model/versions/1"}, "not found"),
    ({"hyperparameters": {"learning_rate": 0.00002}}, "strings"),
])
def test_bad_finetuning_bodies_are_refused_and_nothing_is_created(ml, azure_emulator, kw, text):
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError, match=text):
        ml.jobs.create_or_update(_job(name="bad", **kw))
    assert "bad" not in azure_emulator.state.jobs


def test_marketplace_subscription_is_for_third_party_models_only(ml, azure_emulator):
    from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError, match="needs no marketplace subscription"):
        ml.marketplace_subscriptions.begin_create_or_update(
            MarketplaceSubscription(model_id="azureml://registries/azureml/models/Phi-4", name="phi-sub")).result()
    mistral = "azureml://registries/azureml-mistral/models/Mistral-3B"
    with pytest.raises(HttpResponseError, match="marketplace subscription"):
        ml.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="mistral", model_id=mistral)).result()
    sub = ml.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(model_id=mistral, name="mistral-3b-sub")).result()
    assert sub.status == "subscribed" and ml.marketplace_subscriptions.get("mistral-3b-sub").model_id == mistral
    ep = ml.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="mistral", model_id=mistral)).result()
    assert ep.provisioning_state == "succeeded"
    ml.serverless_endpoints.begin_delete("mistral").result()
    ml.marketplace_subscriptions.begin_delete("mistral-3b-sub").result()
    assert not azure_emulator.state.marketplace_subscriptions



def test_every_body_of_the_finetuning_and_serverless_flow_validates_against_the_rest_spec(ml, azure_emulator):
    """FineTuningJob, ServerlessEndpoint, EndpointAuthKeys and MarketplaceSubscription bodies against the
    vendored 2024-01-01-preview spec (specs/SOURCE.md: the SDK's 2024-10-01-preview jobs map there)."""
    from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint

    from azureml_emulator import schemas

    created = ml.jobs.create_or_update(_job(name="ft-schema"))
    _wait(ml, created.name)
    list(ml.jobs.list())
    ws = ml.workspaces.get(ml.workspace_name)
    model_id = f"azureml://locations/{ws.location}/workspaces/{ws._workspace_id}/models/phi4-ft/versions/1"
    ml.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="schema-ep", model_id=model_id)).result()
    ml.serverless_endpoints.get("schema-ep")
    list(ml.serverless_endpoints.list())
    ml.serverless_endpoints.get_keys("schema-ep")
    mistral = "azureml://registries/azureml-mistral/models/Mistral-3B"
    ml.marketplace_subscriptions.begin_create_or_update(MarketplaceSubscription(model_id=mistral, name="m-sub")).result()
    ml.marketplace_subscriptions.get("m-sub")
    list(ml.marketplace_subscriptions.list())
    wanted = {"job_create", "job_get", "job_list", "serverless_endpoint_create", "serverless_endpoint_get",
              "serverless_endpoint_list", "serverless_endpoint_keys", "marketplace_subscription_create",
              "marketplace_subscription_get", "marketplace_subscription_list"}
    seen, problems = set(), []
    for entry in azure_emulator.responses():
        if entry["route"] not in wanted or entry["status"] not in (200, 201, 202) or entry["json"] is None:
            continue
        assert schemas.operation_for(entry["route"], entry["query"].get("api-version")), entry["route"]
        problems += [f"{entry['route']} {entry['method']}: {e}" for e in schemas.errors(entry)]
        seen.add(entry["route"])
    assert problems == [], "\n".join(problems)
    assert seen == wanted
