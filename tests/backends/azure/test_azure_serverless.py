"""The newer Azure path through real IPython magics and the unmodified SDK against the emulator: one
%%azml_finetune cell with mode serverless (or job) -> FineTuning job -> the model the service registered
-> a serverless endpoint -> %azml_chat through /v1/chat/completions -> %azml_delete --all. Wrong modes,
models and hyperparameters are refused in one line before anything is created.

Phi-4-mini-instruct (the model-as-a-service notebook's) is not among the vendored azureml-assets specs;
Phi-4 is, and its card lists ServerlessMaaS in deploymentOptions, so Phi-4 stands in for it.
"""

from __future__ import annotations

import pytest

from azml_magics.ui.jobtable import metrics_table
from tests.paths import SAMPLE
from tests.shell import run_cell

pytestmark = pytest.mark.azure
WRITES = ("PUT", "POST", "PATCH", "DELETE")
NOT_CREATES = ("token", "token_v1", "datastore_secrets", "control_requests", "control_faults_set",
               "control_faults_reset", "unrouted")


def cell(mode: str | None = "serverless", model: str = "Phi-4", params: str = "learning_rate: 2.0e-5",
         compute: str = "") -> str:
    mode_line = f"mode: {mode}\n" if mode else ""
    return (f"%%azml_finetune\nmodel: {model}\n{mode_line}data:\n  train: {SAMPLE / 'train_sft.jsonl'}\n"
            f"  test: {SAMPLE / 'test_sft.jsonl'}\n{compute}parameters:\n  {params}\n  num_train_epochs: 1\n")


def creates(emulator, mark: int) -> list[str]:
    return [e["route"] for e in emulator.requests()[mark:] if e["method"] in WRITES and e["route"] not in NOT_CREATES]


@pytest.fixture
def connected(emulator, ip, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    emulator.faults.job_duration = 1.5
    result, out, _ = run_cell(ip, f"%azml_connect --backend azure --subscription {emulator.subscription_id} "
                                  f"--resource-group {emulator.resource_group} --workspace {emulator.workspace}")
    assert result.success, out
    ip.run_cell("%config AzmlMagics.poll_interval = 0.1", store_history=False)
    return ip


def shown(out, outputs) -> str:
    return out + "".join(str(o.data) for o in outputs)


def test_serverless_cell_runs_finetune_register_deploy_chat_delete(connected, emulator):
    ip = connected
    mark = len(emulator.requests())
    result, out, outputs = run_cell(ip, cell().replace("%%azml_finetune", "%%azml_finetune --dry-run"))
    assert result.success, out
    text = shown(out, outputs)
    assert "mode: serverless (from your spec)" in text and "per token" in text
    # the estimate: every train row (the test file goes to the job as validation data), 1 epoch, batch 1
    rows = sum(1 for line in open(SAMPLE / "train_sft.jsonl") if line.strip())
    assert f"estimate: {rows:,} training rows" in text and "the service picks the GPUs" in text, text
    assert creates(emulator, mark) == []

    result, out, outputs = run_cell(ip, cell())
    assert result.success, shown(out, outputs)
    [job] = list(emulator.state.jobs.values())
    props = job.body["properties"]
    assert props["jobType"] == "FineTuning" and "resources" not in props and "computeId" not in props
    assert props["fineTuningDetails"]["hyperParameters"] == {"learning_rate": "2e-05", "num_train_epochs": "1"}
    assert not emulator.state.computes  # serverless: no cluster

    result, out, outputs = run_cell(ip, f"%azml_register {job.name}")
    assert result.success, shown(out, outputs)
    assert "registered its model as" in shown(out, outputs)

    result, out, outputs = run_cell(ip, "%azml_deploy --endpoint phi4-serverless")
    assert result.success, shown(out, outputs)
    assert "phi4-serverless" in emulator.state.serverless_endpoints and not emulator.state.endpoints
    keys = emulator.state.serverless_endpoints["phi4-serverless"]["keys"]

    result, out, outputs = run_cell(ip, "%azml_chat phi4-serverless \"Say hello please\"")
    reply = shown(out, outputs) + str(result.result)
    assert result.success and "Say hello please" in reply, reply
    chats = [e for e in emulator.requests() if e["route"] == "serverless_chat_completions"]
    assert chats and chats[-1]["json"]["messages"][-1]["content"] == "Say hello please"

    client = ip.azml.session.openai_client("phi4-serverless")  # the OpenAI route, with the endpoint's key
    answer = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi there"}])
    assert "hi there" in answer.choices[0].message.content

    result, out, outputs = run_cell(ip, "%azml_delete --all")
    assert result.success, shown(out, outputs)
    assert not emulator.state.serverless_endpoints
    texts = shown(out, outputs) + "".join(p.read_text(errors="replace") for p in ip.azml.session.home.rglob("*.json"))
    assert "phi4-serverless" not in ip.azml.session.state.path.read_text()  # its record went with it
    assert not any(k in texts for k in keys)  # the key never reached output or state


def test_job_mode_sends_instance_types_on_managed_compute(connected, emulator):
    ip = connected
    compute = "compute: {size: Standard_NC24ads_A100_v4, job_tier: standard}\n"
    result, out, outputs = run_cell(ip, cell(mode="job", compute=compute))
    assert result.success, shown(out, outputs)
    [job] = list(emulator.state.jobs.values())
    props = job.body["properties"]
    assert props["resources"]["instanceTypes"] == ["Standard_NC24ads_A100_v4"]
    assert props["queueSettings"]["jobTier"] == "Standard"
    assert not emulator.state.computes  # managed compute: no cluster of ours


def test_no_mode_chooses_serverless_from_the_card_and_says_so(connected, emulator):
    result, out, outputs = run_cell(connected, cell(mode=None).replace("%%azml_finetune", "%%azml_finetune --dry-run"))
    assert result.success, out
    assert "mode: serverless (chosen from the model card: Phi-4 offers ServerlessMaaS" in shown(out, outputs)


@pytest.mark.parametrize("kw, expected", [
    ({"mode": "servreless"}, "line 3: mode 'servreless' is not a fine-tune mode; did you mean 'serverless'?"),
    ({"params": "warmup_steps: 10"}, "line 8: parameter 'warmup_steps' is not a hyperparameter a FineTuning job takes"),
    ({"params": "learning_rate: -1"}, "line 8: parameters.learning_rate must be"),
    ({"mode": "serverless", "compute": "compute: {size: Standard_NC24ads_A100_v4}\n"}, "line 7: mode serverless runs on no compute"),
    ({"mode": "job", "compute": "compute: {size: Standard_NC6s_v3}\n"}, "Standard_NC6s_v3"),
    ({"model": "No-Such-Model"}, "not in the 'azureml' registry"),
])
def test_wrong_mode_model_or_parameter_is_refused_in_one_line(connected, emulator, kw, expected):
    mark = len(emulator.requests())
    result, out, outputs = run_cell(connected, cell(**kw))
    text = shown(out, outputs)
    assert "UsageError" in text and expected in text and "Traceback" not in text, text
    error_lines = [line for line in out.splitlines() if "UsageError" in line]
    assert len(error_lines) == 1, out
    assert creates(emulator, mark) == [] and not emulator.state.jobs


def test_marketplace_subscription_is_made_once_recorded_and_removed_by_delete_all(azure, emulator):
    from azml_magics.backends.azure import finetuning
    from azml_magics.backends.base import ModelInfo

    client = azure.backend.clients.workspace
    phi = ModelInfo(name="Phi-4", version="8", id="azureml://registries/azureml/models/Phi-4/versions/8")
    mark = len(emulator.requests())
    assert finetuning.ensure_subscription(client, phi, azure.messages.append) == {}  # Microsoft's own: none
    assert creates(emulator, mark) == []
    mistral = ModelInfo(name="Mistral-3B", version="1", id="azureml://registries/azureml-mistral/models/Mistral-3B/versions/1")
    created = finetuning.ensure_subscription(client, mistral, azure.messages.append)
    assert created == {"Mistral-3B-sub": {"model": "azureml://registries/azureml-mistral/models/Mistral-3B"}}
    assert finetuning.ensure_subscription(client, mistral, azure.messages.append) == {}  # there already: once
    for name, info in created.items():  # what Session.finetune does with JobRef.created
        azure.state.add("subscriptions", name, **info)
    items = [i for ws in azure.status() for i in ws.items]
    assert any(i.kind == "marketplace subscription" and i.name == "Mistral-3B-sub" for i in items)  # %azml_status
    removed = azure.delete(all=True)
    assert "marketplace subscription Mistral-3B-sub" in removed
    assert not emulator.state.marketplace_subscriptions and not azure.state.list("subscriptions")


def test_finetuning_job_status_logs_and_cancel_through_the_session(azure, emulator):
    emulator.faults.job_duration = 60.0  # still running when it is canceled
    spec = {"model": "Phi-4", "mode": "job", "compute": {"size": "Standard_NC24ads_A100_v4"},
            "data": {"train": str(SAMPLE / "train_sft.jsonl"), "test": str(SAMPLE / "test_sft.jsonl")},
            "parameters": {"num_train_epochs": 1}}
    job = azure.finetune(spec)
    assert azure.job(job.name).state in ("NotStarted", "Queued", "Running")
    assert any("FineTuning job" in line for line in azure.logs(job.name).lines)
    assert job.name in [j.name for j in azure.jobs()]
    assert azure.cancel(job.name).state in ("Canceled", "Finalizing")
    final = azure.watch(job.name, interval=0.1, timeout=30)
    assert final.state == "Canceled"
    with pytest.raises(Exception, match="Canceled"):
        azure.register(job.name)  # a canceled FineTuning job registered nothing


def damage_state_and_reconnect(ip, emulator):
    """Overwrite the home's state file with garbage, then connect again as a user would: (result, output)."""
    ip.azml.session.state.path.write_bytes(b"\x00\xffnot a state file")
    result, out, _ = run_cell(ip, f"%azml_connect --backend azure --subscription {emulator.subscription_id} "
                                  f"--resource-group {emulator.resource_group} --workspace {emulator.workspace}")
    return result, out


def test_a_damaged_state_still_finds_our_tagged_serverless_endpoint(connected, emulator):
    from azml_magics.backends.azure import owned

    ip = connected
    session = ip.azml.session
    job = session.finetune({"model": "Phi-4", "mode": "serverless", "parameters": {"num_train_epochs": 1},
                            "data": {"train": str(SAMPLE / "train_sft.jsonl"), "test": str(SAMPLE / "test_sft.jsonl")}})
    assert session.watch(job.name, interval=0.1, timeout=60).state == "Completed"
    assert session.metrics(job.name) == {}  # a FineTuning job publishes no child runs: no pipeline step curves
    assert session.cancel(job.name).state == "Completed"  # the service refuses to cancel an ended job: its status
    assert "none yet" in str(metrics_table(session.metrics(job.name)))
    ref = session.register(job.name)
    session.deploy({"model": f"{ref.name}:{ref.version}", "endpoint": "ours-serverless"})
    assert emulator.state.serverless_endpoints["ours-serverless"]["tags"] == owned.owner_tags(session.backend.record)
    result, out = damage_state_and_reconnect(ip, emulator)
    assert result.success and "found again: 1 endpoints, 1 jobs" in out, out
    result, out, _ = run_cell(ip, "%azml_delete --all")
    assert result.success and "endpoint ours-serverless" in out, out
    assert not emulator.state.serverless_endpoints


def test_a_damaged_state_finds_the_subscription_our_job_created_and_not_one_that_was_there(connected, emulator,
                                                                                          monkeypatch):
    """A marketplace subscription has no tags: the FineTuning job that created it names it, and a damaged
    state finds it again through that job; a subscription that was there before is never taken for ours."""
    from azml_magics.backends.azure import finetuning, owned
    from azml_magics.backends.base import ModelInfo

    ip = connected
    session = ip.azml.session
    client = session.backend.clients.workspace
    def model(name):
        return ModelInfo(name=name, version="1", id=f"azureml://registries/azureml-mistral/models/{name}/versions/1")

    assert finetuning.ensure_subscription(client, model("Ministral-3B"), lambda _: None)  # the user's own, from before
    # the emulator's registry publishes no model outside Microsoft's: the Phi-4 job's submission subscribes to one
    real = finetuning.ensure_subscription
    monkeypatch.setattr(finetuning, "ensure_subscription",
                        lambda client, _model, progress: real(client, model("Mistral-3B"), progress))
    job = session.finetune({"model": "Phi-4", "mode": "serverless", "parameters": {"num_train_epochs": 1},
                            "data": {"train": str(SAMPLE / "train_sft.jsonl"), "test": str(SAMPLE / "test_sft.jsonl")}})
    assert emulator.state.jobs[job.name].body["properties"]["tags"][owned.TAG_SUBSCRIPTIONS] == "Mistral-3B-sub"
    assert set(emulator.state.marketplace_subscriptions) == {"Ministral-3B-sub", "Mistral-3B-sub"}
    result, out = damage_state_and_reconnect(ip, emulator)
    assert result.success and "found again: 1 jobs, 1 subscriptions" in out, out
    result, out, _ = run_cell(ip, "%azml_delete --all")
    assert result.success and "marketplace subscription Mistral-3B-sub" in out, out
    assert set(emulator.state.marketplace_subscriptions) == {"Ministral-3B-sub"}  # the user's own stays
