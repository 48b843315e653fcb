"""Microsoft's own chat-completion notebook (azureml-examples; read unchanged from the team's shared data,
see azureml_emulator/notebook/upstream/SOURCE.md; skipped where it is not provided) as a conformance test.

Its code cells run unmodified against the emulator, apart from the pip cell, the dataset download
(the bundled sample instead) and config.json pointing at the emulator. As published, it names
Phi-3-mini-4k-instruct, archived with fine-tuning retired on 2025-08-30; it never reads that state and
fails later, in the unmodified SDK, when the published model defaults reach the published pipeline
component. Our magics do the same job on the live Phi-4 and do not fail.
"""

from __future__ import annotations

import json

import pytest

from azureml_emulator.notebook.upstream import code_cells, notebook_path, run_upstream
from tests.paths import SAMPLE

pytestmark = [pytest.mark.azure, pytest.mark.slow]
needs_notebook = pytest.mark.skipif(
    notebook_path() is None,
    reason="the upstream notebook is not committed here (Microsoft's code); put it at "
           "../shared/data/azureml-examples/chat-completion.ipynb or set AZML_UPSTREAM_NOTEBOOK",
)


@pytest.fixture
def emu(azure_emulator, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    azure_emulator.faults.job_duration = 2.0
    return azure_emulator


@needs_notebook
def test_vendored_notebook_is_the_published_one():
    cells = code_cells()
    assert len(cells) == 18 and cells[0].skipped and sum(c.downloads for c in cells) == 1
    sources = "\n".join(c.source for c in cells)
    assert 'model_name = "Phi-3-mini-4k-instruct"' in sources
    assert 'compute_cluster_size = "Standard_ND40rs_v2"' in sources
    assert 'instance_type = "STANDARD_NC4AS_T4_V3"' in sources  # after the NCv3 retirement update


@needs_notebook
def test_upstream_notebook_fails_where_azure_fails_it(emu, tmp_path):
    from azure.ai.ml.exceptions import UnexpectedKeywordError

    run = run_upstream(emu, tmp_path, SAMPLE)

    # connect, model, allow list, compute, data, parameters and display name all ran
    assert run.ran == [4, 6, 8, 9, 11, 12, 15, 16]
    model = run.namespace["foundation_model"]
    assert (model.name, model.version) == ("Phi-3-mini-4k-instruct", "15")  # archived; the notebook never looks
    out = run.run.outputs
    assert "`finetune_compute_allow_list` is not part of model tags" in out["upstream 8"]  # tag removed 2026-06-16
    assert "Number of GPU's in compute Standard_ND40rs_v2: 8" in out["upstream 9"]
    assert run.namespace["finetune_parameters"]["learning_rate_min"] == "5e-7"  # the published tag, merged

    # ... and the pipeline cell fails in the SDK: the published defaults carry keys that are not inputs
    # of the published chat_completion_pipeline (0.0.82, label latest)
    assert run.failed is not None and run.failed.index == 17
    assert isinstance(run.error, UnexpectedKeywordError)
    assert "got an unexpected keyword argument 'learning_rate_min'" in str(run.error)
    routes = [r["route"] for r in emu.requests()]
    assert "registry_component_versions_list" in routes and "job_create" not in routes
    # what it created before failing stays, billing: the V100 cluster (on Azure too)
    assert [c["properties"]["properties"]["vmSize"] for c in emu.state.computes.values()] == ["Standard_ND40rs_v2"]


def test_our_magics_do_the_same_job_on_a_live_model(emu, ip, tmp_path, monkeypatch):
    from tests.shell import run_cell

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ultrachat_200k_dataset"
    folder.mkdir()
    for split in ("train_sft", "test_sft", "train_gen", "test_gen"):
        (folder / f"{split}.jsonl").write_text((SAMPLE / f"{split}.jsonl").read_text())
    row = json.loads((SAMPLE / "test_gen.jsonl").read_text().splitlines()[0])
    (tmp_path / "sample_score.json").write_text(json.dumps({"input_data": {"input_string": [row["messages"]],
        "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200}}, "params": {}}))

    connect = (f"%azml_connect --backend azure --subscription {emu.subscription_id} --resource-group "
               f"{emu.resource_group} --workspace {emu.workspace}")
    finetune = """%%azml_finetune
model: {model}
data: ultrachat_200k_dataset
compute: {{name: gpu-cluster-big, size: {size}, max_instances: 2}}
parameters: {{num_train_epochs: 3, per_device_train_batch_size: 1, per_device_eval_batch_size: 1,
  learning_rate: 5.0e-6, lr_scheduler_type: cosine, apply_lora: true, apply_deepspeed: true, deepspeed_stage: 2}}
experiment: chat_completion_{model}"""
    for cell in ("%config AzmlMagics.poll_interval = 0.2", connect):
        assert run_cell(ip, cell)[0].success

    # the upstream's own choices are refused in one line before anything is created
    mark = len(emu.requests())
    for model, size, says in (("Phi-3-mini-4k-instruct", "Standard_NC24ads_A100_v4", "fine-tuning retired on 2025-08-30"),
                              ("Phi-4", "Standard_ND40rs_v2", "Standard_ND40rs_v2")):
        result, out, _ = run_cell(ip, finetune.format(model=model, size=size))
        lines = [line for line in out.splitlines() if says in line]
        assert len(lines) == 1 and "Traceback" not in out, out
    assert [e for e in emu.requests()[mark:] if e["method"] in ("PUT", "POST") and e["route"].endswith("_create")] == []

    # the same story on the live model, from a size its card allows: fine-tune, register, deploy, chat, delete
    for cell in (finetune.format(model="Phi-4", size="Standard_NC24ads_A100_v4"), "%azml_register",
                 "%azml_deploy --endpoint ultrachat-completion-magics", "%azml_chat --request-file sample_score.json",
                 "%azml_delete ultrachat-completion-magics"):
        result, out, _ = run_cell(ip, cell)
        assert result.success, f"{cell.splitlines()[0]}: {result.error_in_exec or result.error_before_exec}\n{out}"
    job = next(r for r in emu.requests() if r["route"] == "job_create")["json"]["properties"]
    (step,) = job["jobs"].values()  # the one node: the registry pipeline component
    assert step["componentId"].endswith("/components/chat_completion_pipeline/versions/0.0.82")
    assert "learning_rate_min" not in step["inputs"] and step["inputs"]["num_train_epochs"]["value"] in (3, "3")
    assert any(r["route"] == "score" for r in emu.requests())
    assert not emu.state.endpoints
