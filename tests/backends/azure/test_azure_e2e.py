"""The Azure backend end to end: the real azure-ai-ml SDK against the loopback Azure ML emulator.

Nothing here is mocked: the SDK finds the emulator through its standard cloud-metadata variables,
authenticates with a real credential class (the default chain's environment credential), uploads to
Azurite, and every request it sends is in the emulator's log, which the tests read.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from azml_magics import api
from azml_magics.errors import AzmlError, SpecError
from tests.paths import SAMPLE

pytestmark = pytest.mark.azure

MODEL = "Phi-4"  # live in the published registry assets; the Phi-3 family is archived
WRITES = ("PUT", "POST", "PATCH", "DELETE")
NOT_CREATES = ("token", "token_v1", "datastore_secrets", "control_requests", "control_faults_set",
               "control_faults_reset", "unrouted")


def spec_text(model: str = MODEL, size: str = "Standard_NC24ads_A100_v4", extra: str = "", cluster: str = "gpu-cluster") -> str:
    return f"""
model: {model}
data:
  train: {SAMPLE / 'train_sft.jsonl'}
  test: {SAMPLE / 'test_sft.jsonl'}
compute: {{name: {cluster}, size: {size}, max_instances: 2}}
parameters:
  num_train_epochs: 3
  per_device_train_batch_size: 1
  per_device_eval_batch_size: 1
  learning_rate: 5.0e-6
  lr_scheduler_type: cosine
  apply_lora: true
  apply_deepspeed: true
  deepspeed_stage: 2
{extra}"""


def log_since(emulator, mark: int) -> list[dict]:
    return emulator.requests()[mark:]


def creates(entries) -> list[dict]:
    return [e for e in entries if e["method"] in WRITES and e["route"] not in NOT_CREATES]


def routes(entries) -> list[str]:
    return [e["route"] for e in entries]


def wait_done(session, job, timeout=60.0):
    result = session.watch(job, interval=0.1, timeout=timeout)
    assert not isinstance(result, api.Detached)
    return result


# ----------------------------------------------------------------------------- connect and model
def test_connect_reads_config_json_like_from_config(emulator, tmp_path, monkeypatch):
    (tmp_path / "nested").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({
        "subscription_id": emulator.subscription_id, "resource_group": emulator.resource_group,
        "workspace_name": emulator.workspace}))
    monkeypatch.chdir(tmp_path / "nested")  # from_config looks in the parents too
    session = api.Session(home=tmp_path / "home")
    ws = session.connect("azure")
    assert ws.key == f"azure:{emulator.subscription_id}/{emulator.resource_group}/{emulator.workspace}"
    assert ws.location == "eastus" and ws.registry == "azureml"
    assert ws.details["credential"] == "DefaultAzureCredential"
    assert all("secret" not in str(v).lower() for v in ws.details.values())


def test_connect_without_config_says_how_to_fix(emulator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AzmlError, match="no config.json found.*--subscription --resource-group --workspace"):
        api.Session(home=tmp_path / "home").connect("azure")


def test_model_card_and_retired_model_refused_with_a_pointer(azure, emulator):
    info = azure.model(MODEL)  # through the SDK: tags as strings, system metadata from the REST body
    assert info.version == "8" and info.tasks == ["chat-completion"] and info.state == "live"
    assert info.finetune_allow_list[0] == "Standard_NC24ads_A100_v4" and "Standard_ND96isr_H100_v5" in info.finetune_allow_list
    assert info.min_sku == "24 cores, 1 GPU, 220 GB RAM, 64 GB disk" and info.unpublished == []
    assert info.model_defaults["deepspeed_stage"] == 3 and info.model_defaults["learning_rate"] == "5e-6"
    mark = len(emulator.requests())
    with pytest.raises(SpecError, match="archived; fine-tuning retired on 2025-08-30.*%azml_models"):
        azure.finetune(spec_text(model="Phi-3-mini-4k-instruct"))
    assert creates(log_since(emulator, mark)) == []
    listed = {m.name: m.state for m in azure.models()}
    assert list(listed)[0] == MODEL and listed[MODEL] == "live"
    assert listed["Phi-3-mini-4k-instruct"] == listed["Phi-3.5-mini-instruct"] == \
        "archived; fine-tuning retired on 2025-08-30"


def test_unpublished_allow_list_is_said_not_passed_silently(azure, emulator):
    emulator.faults.registry_omits_system_metadata = True  # the recorded registry GET's shape
    info = azure.model(MODEL)
    assert info.finetune_allow_list is None and "fine-tune allow list" in info.unpublished
    plan = azure.plan_finetune(spec_text(size="Standard_ND40rs_v2"), check_data=False)
    assert any("Standard_ND40rs_v2 was not checked against an allow list" in n for n in plan.notes)


def test_archived_model_refused_before_anything_is_created(azure, emulator):
    emulator.faults.archived = True
    mark = len(emulator.requests())
    with pytest.raises(SpecError, match="archived"):
        azure.finetune(spec_text())
    assert creates(log_since(emulator, mark)) == []


# ----------------------------------------------------------------------------- checks before creating
def test_allow_list_violation_refused_with_zero_create_requests(azure, emulator):
    mark = len(emulator.requests())
    with pytest.raises(SpecError) as err:
        azure.finetune(spec_text(size="Standard_ND40rs_v2"))
    text = str(err.value)
    assert "Standard_ND40rs_v2" in text and "Standard_NC24ads_A100_v4, Standard_NC48ads_A100_v4" in text
    assert creates(log_since(emulator, mark)) == []


def test_model_defaults_filtered_and_shown_user_values_win(azure, emulator):
    # the Phi-3 cards' tag carries learning_rate_min/max, which are not component inputs
    emulator.faults.model_specific_defaults = {"num_train_epochs": "1", "save_total_limit": "1",
                                               "learning_rate_min": "1e-6", "learning_rate_max": "5e-5"}
    plan = azure.plan_finetune(spec_text())
    assert plan.effective.dropped_model_defaults == {"learning_rate_min": "1e-6", "learning_rate_max": "5e-5"}
    assert any("learning_rate_min" in note for note in plan.notes)
    assert plan.effective.values["num_train_epochs"] == 3
    assert plan.effective.source_of("num_train_epochs") == "your spec"
    assert plan.effective.source_of("save_total_limit") == "model default"
    assert plan.display_name == f"{MODEL}-ultrachat-bs1-cosine-ds2-lora-save_limit1-seqlen-1"


def test_user_typo_refused_before_submission(azure, emulator):
    mark = len(emulator.requests())
    with pytest.raises(SpecError, match="did you mean 'num_train_epochs'"):
        azure.finetune(spec_text().replace("num_train_epochs", "num_train_epoch"))
    with pytest.raises(SpecError, match="unknown parameter 'learning_rate_min'"):
        azure.finetune(spec_text().replace("apply_lora: true", "apply_lora: true\n  learning_rate_min: 1.0e-6"))
    assert creates(log_since(emulator, mark)) == []


def test_existing_cluster_of_another_size_refused(azure, emulator):
    from azml_magics.spec import ComputeSpec

    info = azure.model(MODEL)
    azure.backend.ensure_compute(ComputeSpec(name="small-a100", size="Standard_NC24ads_A100_v4"), info)
    mark = len(emulator.requests())
    with pytest.raises(SpecError, match="already exists with size Standard_NC24ads_A100_v4"):
        azure.backend.check_compute(ComputeSpec(name="small-a100", size="Standard_NC48ads_A100_v4"), info)
    assert creates(log_since(emulator, mark)) == []


# ----------------------------------------------------------------------------- the whole flow
def test_finetune_register_deploy_chat_delete(azure, emulator, capfd, monkeypatch):
    import io

    from azml_magics import waits
    from azml_magics.ui.waitbar import TextReporter

    shown = io.StringIO()
    monkeypatch.setattr(waits, "SHOW_AFTER", 0.0)  # the emulator uploads in well under a second
    waits.set_reporter(TextReporter(shown))
    mark = len(emulator.requests())
    try:
        job = azure.finetune(spec_text())
    finally:
        waits.set_reporter(None)
    first = log_since(emulator, mark)
    ended = [line.split("\r")[-1] for line in shown.getvalue().split("\n")]
    for split in ("train", "test"):  # each upload is a wait that ends in its final line
        assert any(line.startswith(f"Uploading {split} ({split}_sft.jsonl): done in") for line in ended), ended
    out, err = capfd.readouterr()
    # the SDK's own upload bar ("Uploading train_sft.jsonl (< 1 MB): 100%|...| 1.2k/1.2k [00:00<00:00, 9kB/s]")
    assert "MB)" not in out + err and "B/s]" not in out + err, err
    assert routes(creates(first)).count("data_create") == 2  # train and test, once each
    assert "compute_create" in routes(first)
    assert job.display_name.startswith(MODEL) and job.experiment == f"chat_completion_{MODEL}"

    final = wait_done(azure, job.name)
    assert final.state == "Completed"
    # the real tree, two levels down: job -> chat_completion_pipeline -> these five steps
    assert [s.name for s in final.steps] == ["ft_nlp_common_validation", "chat_completion_model_import",
                                             "chat_completion_datapreprocess", "chat_completion_finetune",
                                             "ft_nlp_model_converter"]
    assert all(s.state == "Completed" for s in final.steps)
    chunk = azure.logs(job.name)
    assert chunk.step is not None and chunk.lines
    assert azure.logs(job.name, chunk.cursor).lines == []  # the cursor gives only newer lines
    # metrics come from the workspace's MLflow (the emulator serves the MLflow REST API there)
    series = azure.metrics(job.name)
    assert {"loss", "eval_loss", "learning_rate"} <= set(series), sorted(series)
    loss = [p.value for p in series["loss"]]
    assert len(loss) >= 3 and loss[-1] < loss[0]

    # the same data again: found by content hash, not uploaded twice; the cluster is reused
    mark = len(emulator.requests())
    second = azure.finetune(spec_text())
    again = log_since(emulator, mark)
    assert "data_create" not in routes(again) and "compute_create" not in routes(again)
    assert any("not uploaded again" in m for m in azure.messages)
    wait_done(azure, second.name)

    ref = azure.register(job.name)
    assert ref.name == f"{MODEL}-ultrachat-200k" and ref.job == job.name
    assert ref.tags["azml.base_model"].endswith(f"/models/{MODEL}/versions/8")
    mark = len(emulator.requests())
    assert azure.register(job.name).version == ref.version  # no duplicate
    assert "model_create" not in routes(log_since(emulator, mark))

    endpoint = azure.deploy({"model": f"{ref.name}:{ref.version}", "endpoint": "ultrachat-e2e"})
    assert endpoint.scoring_uri and endpoint.deployment == "demo"
    assert endpoint.instance_type == "Standard_NC24ads_A100_v4"
    key_values = [v for pair in emulator.state.endpoint_keys.values() for v in pair if v]
    assert key_values
    assert any("Standard_NC24ads_A100_v4" in m and "%azml_delete ultrachat-e2e" in m for m in azure.messages)
    reply = azure.chat("ultrachat-e2e", "Say hello.")
    assert isinstance(reply, str) and reply
    request = json.loads((SAMPLE / "test_gen.jsonl").read_text().splitlines()[0])
    response = azure.invoke(None, {"input_data": {"input_string": [request["messages"]], "parameters": {
        "temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200}}, "params": {}})
    assert "output" in response

    removed = azure.delete(all=True)
    assert "endpoint ultrachat-e2e" in removed and "compute gpu-cluster" in removed
    assert azure.state.is_empty() or not (azure.state.list("endpoints") or azure.state.list("computes"))
    assert "ultrachat-e2e" not in emulator.state.endpoints and "gpu-cluster" not in emulator.state.computes
    state_text = azure.state.path.read_text() + "\n".join(azure.messages)
    assert not any(k in state_text for k in key_values)  # the key never reached state or output


def test_deploy_instance_type_outside_inference_allow_list_refused(azure, emulator):
    job = azure.finetune(spec_text(cluster="gpu-deploy"))
    wait_done(azure, job.name)
    ref = azure.register(job.name)
    mark = len(emulator.requests())
    with pytest.raises(SpecError, match="Standard_NC4as_T4_v3 is not in .* inference compute allow list.*Standard_NC24ads_A100_v4"):
        azure.deploy({"model": f"{ref.name}:{ref.version}", "endpoint": "t4-refused",
                      "instance_type": "Standard_NC4as_T4_v3"})
    assert creates(log_since(emulator, mark)) == []


# ----------------------------------------------------------------------------- watching
def test_failed_step_reported_with_the_services_message(azure, emulator):
    emulator.faults.failing_step = "preprocess"
    emulator.faults.failing_step_error = "UserError: Preprocess found 3 training rows; at least 10 are needed."
    job = azure.finetune(spec_text(cluster="gpu-fail"))
    final = wait_done(azure, job.name)
    assert final.state == "Failed"
    failed = [s for s in final.steps if s.state == "Failed"]
    assert [s.name for s in failed] == ["chat_completion_datapreprocess"] and "at least 10 are needed" in failed[0].error
    assert "at least 10 are needed" in final.error


def test_ctrl_c_detaches_and_reattach_by_name(azure, emulator):
    emulator.faults.job_duration = 3.0
    job = azure.finetune(spec_text(cluster="gpu-detach"))
    seen = []

    def press_ctrl_c(status):
        seen.append(status.state)
        raise KeyboardInterrupt

    detached = azure.watch(job.name, on_update=press_ctrl_c, interval=0.05)
    assert isinstance(detached, api.Detached) and detached.job == job.name
    assert azure.job(job.name).state not in ("Completed", "Failed", "Canceled")  # the job went on
    fresh = api.Session(home=azure.home, poll_interval=0.05)  # a new kernel: re-attach by name
    fresh.connect("azure", subscription_id=emulator.subscription_id, resource_group=emulator.resource_group,
                  workspace_name=emulator.workspace)
    assert fresh.watch(job.name, interval=0.1, timeout=60).state == "Completed"
    assert job.name in [j.name for j in fresh.jobs()]


def test_cancel(azure, emulator):
    emulator.faults.job_duration = 30.0
    job = azure.finetune(spec_text(cluster="gpu-cancel"))
    azure.cancel(job.name)
    assert wait_done(azure, job.name, timeout=20).state == "Canceled"


def test_throttled_requests_are_retried(azure, emulator):
    job = azure.finetune(spec_text(cluster="gpu-429"))
    emulator.faults.http("job_get", 429, retry_after=0.2, times=2)
    mark = len(emulator.requests())
    start = time.monotonic()
    status = azure.job(job.name)
    assert status.name == job.name
    got = [e for e in log_since(emulator, mark) if e["route"] == "job_get"]
    assert len(got) >= 3  # two throttled answers, then the real one
    assert time.monotonic() - start >= 0.4
    wait_done(azure, job.name)


# ----------------------------------------------------------------------------- through the magics
def test_magics_connect_card_and_dry_run_show_what_would_be_sent(emulator, ip, tmp_path, monkeypatch):
    from tests.shell import run_cell

    monkeypatch.chdir(tmp_path)
    result, out, outputs = run_cell(ip, f"%azml_connect --backend azure --subscription {emulator.subscription_id} "
                                        f"--resource-group {emulator.resource_group} --workspace {emulator.workspace}")
    assert result.success, out
    shown = out + "".join(str(o.data) for o in outputs)
    assert "ws-emulator" in shown and "eastus" in shown and "azureml" in shown
    result, out, outputs = run_cell(ip, "%azml_models Phi-3-mini-4k-instruct")
    assert result.success and "retired on 2025-08-30" in "".join(str(o.data) for o in outputs)
    result, out, outputs = run_cell(ip, "%azml_models")
    listing = "".join(str(o.data) for o in outputs)
    assert result.success and "Phi-4" in listing and "24 cores, 1 GPU, 220 GB RAM, 64 GB disk" in listing
    assert "1 of 4 can be fine-tuned now." in listing and "Standard_ND96isr_H100_v5" in listing
    mark = len(emulator.requests())
    result, out, outputs = run_cell(ip, "%%azml_finetune --dry-run\n" + spec_text())
    assert result.success, out
    shown = out + "".join(str(o.data) for o in outputs)
    assert "deepspeed_stage" in shown and "num_train_epochs" in shown
    # the estimate: Azure trains on train[:80%] when a test file is given; 1 GPU (NC24ads), batch 1, 3 epochs
    rows = round(0.8 * sum(1 for line in open(SAMPLE / "train_sft.jsonl") if line.strip()))
    assert f"estimate: {rows:,} training rows, tokens not counted" in shown, shown
    assert f"{rows * 3:,} optimizer steps on 1 process(es)" in shown
    assert "peak memory per device not estimated on 1 x Standard_NC24ads_A100_v4 (1 GPU each)" in shown
    assert "time not estimated (no published throughput" in shown
    assert creates(log_since(emulator, mark)) == []
    result, out, _ = run_cell(ip, "%%azml_finetune\n" + spec_text(size="Standard_ND40rs_v2"))
    assert "UsageError" in out and "Standard_NC24ads_A100_v4" in out and "Traceback" not in out
    assert creates(log_since(emulator, mark)) == []


def test_credentials_are_the_ones_asked_for():
    from azml_magics.backends.azure import connection

    assert type(connection.make_credential("cli")[0]).__name__ == "AzureCliCredential"
    assert type(connection.make_credential("device-code")[0]).__name__ == "DeviceCodeCredential"
    assert type(connection.make_credential("managed-identity")[0]).__name__ == "ManagedIdentityCredential"
    assert type(connection.make_credential("browser")[0]).__name__ == "InteractiveBrowserCredential"
    assert type(connection.make_credential("default")[0]).__name__ == "DefaultAzureCredential"
    with pytest.raises(AzmlError, match="unknown credential 'secret'"):
        connection.make_credential("secret")


def test_pinned_pipeline_version_is_used_and_a_missing_one_refused(azure, emulator):
    mark = len(emulator.requests())
    job = azure.finetune(spec_text(extra="pipeline_version: 0.0.80", cluster="gpu-pinned"))
    body = next(e["json"] for e in log_since(emulator, mark) if e["route"] == "job_create")
    node = next(iter(body["properties"]["jobs"].values()))
    assert node["componentId"].endswith("/components/chat_completion_pipeline/versions/0.0.80")
    assert job.name
    mark = len(emulator.requests())
    with pytest.raises(SpecError, match="version 9.9.9 is not in the registry"):
        azure.finetune(spec_text(extra="pipeline_version: 9.9.9", cluster="gpu-pinned"))
    assert creates(log_since(emulator, mark)) == []


def test_the_estimate_counts_tokens_with_the_models_tokenizer_and_steps_over_every_gpu(azure, tiny_model_dir):
    """With the tokenizer at hand (here the tiny model's), tokens are counted as Azure will train them:
    the first 80% of train, each row cut at max_seq_length; steps divide by GPUs x nodes."""
    from transformers import AutoTokenizer

    from azml_magics.backends.azure import plan_estimate

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    extra = "  max_seq_length: 64\n  number_of_gpu_to_use_finetuning: 1\n  num_nodes_finetune: 2\n  gradient_accumulation_steps: 2"
    plan = azure.plan_finetune(spec_text(extra=extra))
    got = plan_estimate.estimate_plan(plan, tokenizer)
    conversations = [json.loads(line)["messages"] for line in open(SAMPLE / "train_sft.jsonl") if line.strip()]
    rows = round(0.8 * len(conversations))
    lengths = [min(len(tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]), 64)
               for c in conversations[:rows]]
    assert (got.rows, got.tokens, got.processes) == (rows, sum(lengths), 2)
    assert got.optimizer_steps == math.ceil(math.ceil(rows / 2) / 2) * 3
