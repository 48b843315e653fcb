"""%%azml_finetune --smoke: a spec written for Azure, run end to end on this machine.

A model folder stands in for the hub model: Phi-3-mini-128k-instruct's published config.json
dimensions (longrope factors included) with the tiny model's tokenizer and chat template, and no
weights at all; the smoke run must build its two-layer random copy from the config alone.
"""

from __future__ import annotations

import json
import shutil

import pytest

from azml_magics.data import sample_dir
from tests.shell import run_cell

PHI3_128K = {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": 131072,
             "original_max_position_embeddings": 4096,
             "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 48, "long_factor": [1.5] * 48}}


@pytest.fixture
def hub_standin(tmp_path, tiny_model_dir):
    folder = tmp_path / "Phi-3-mini-128k-instruct"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, folder / f.name)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **PHI3_128K}))
    return folder


@pytest.mark.slow
def test_smoke_runs_an_azure_spec_end_to_end(ip, azml_home, hub_standin):
    d = sample_dir()
    cell = (
        "%%azml_finetune --smoke\n"
        f"model: {hub_standin}\n"
        f"data: {{train: {d}/train_sft.jsonl, test: {d}/test_sft.jsonl}}\n"
        "compute: {name: gpu-cluster, size: Standard_NC24ads_A100_v4, max_instances: 2}\n"
        "parameters:\n"
        "  num_train_epochs: 3\n"
        "  learning_rate: 5.0e-5\n"
        "  apply_lora: true\n"
        "  precision: '16'\n"
        "  number_of_gpu_to_use_finetuning: 8\n"
        "  apply_deepspeed: true\n"
        "  per_device_train_batch_size: 2\n"
    )
    result, _, outputs = run_cell(ip, cell)
    text = "".join(o.data.get("text/plain", "") for o in outputs)
    assert result.error_in_exec is None, (result.error_in_exec, text)
    assert "Smoke run phi-3-mini-128k-instruct-smoke-ft-" in text and ": Completed" in text
    assert "2 layers of width 64, random weights" in text and "train_sft: 32 rows" in text
    assert "register" in text and "the endpoint answered in the Azure /score shape" in text
    # nothing of the user's own workspace changed: the smoke run has its own home
    assert ip.azml.session.state is None or ip.azml.session.state.is_empty()
    smoke_homes = list((azml_home / "smoke").iterdir())
    assert len(smoke_homes) == 1 and not list((smoke_homes[0] / "endpoints").glob("*.json"))  # endpoint deleted
    weights = list((smoke_homes[0] / "Phi-3-mini-128k-instruct-smoke").glob("*.safetensors"))
    assert weights and sum(w.stat().st_size for w in weights) < 20 * 2**20  # two narrow layers, not 3.8B
