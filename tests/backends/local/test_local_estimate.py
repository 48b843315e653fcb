"""The estimate in the plan: tokens, steps, memory per device, time; refusal with the numbers; beside measured."""

from __future__ import annotations

import json
import shutil

import pytest

from azml_magics import estimate as est
from azml_magics.data import sample_dir
from azml_magics.errors import SpecError

GIB = 2**30
# Phi-3-mini-4k-instruct's published config.json dimensions (about 3.8B parameters)
PHI3_MINI = {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": 4096}


def test_memory_model_by_part():
    shape = est.ModelShape(params=10**9, trainable=10**9, linear_params=9 * 10**8, layers=16, hidden=2048, vocab=32000)
    full = est.memory(shape, precision="bf16", lora=False, qlora=False, batch=1, seq_len=1024)
    assert (full["weights"], full["gradients"], full["optimizer"]) == (4 * 10**9, 4 * 10**9, 8 * 10**9)
    assert full["activations"] == 16 * 34 * 1024 * 2048 + 8 * 1024 * 32000  # 16-bit: 34 bytes per token per hidden unit
    zero3 = est.memory(shape, precision="bf16", lora=False, qlora=False, batch=1, seq_len=1024, processes=4, sharding="zero3")
    assert zero3["weights"] == 10**9 and zero3["optimizer"] == 2 * 10**9
    zero2 = est.memory(shape, precision="bf16", lora=False, qlora=False, batch=1, seq_len=1024, processes=4, sharding="zero2")
    assert zero2["weights"] == 4 * 10**9 and zero2["gradients"] == 10**9
    lora = est.ModelShape(10**9, 10**7, 9 * 10**8, 16, 2048, 32000)
    half = est.memory(lora, precision="bf16", lora=True, qlora=False, batch=1, seq_len=1024)
    q = est.memory(lora, precision="bf16", lora=True, qlora=True, batch=1, seq_len=1024)
    assert half["weights"] == 2 * 10**9 + 4 * 10**7 and q["weights"] < half["weights"] / 2.5
    ckpt = est.memory(shape, precision="bf16", lora=False, qlora=False, batch=1, seq_len=1024, checkpointing=True)
    # checkpointing keeps each layer's input (2 bytes) and recomputes one layer at a time; logits stay
    assert ckpt["activations"] == 16 * 2 * 1024 * 2048 + 34 * 1024 * 2048 + 8 * 1024 * 32000


def test_optimizer_steps_as_the_trainer_counts():
    assert est.optimizer_steps(208, 8, 1, 1, 3) == 78
    assert est.optimizer_steps(208, 4, 1, 2, 1) == 26  # two processes of 4: the same 8 rows a step
    assert est.optimizer_steps(208, 8, 4, 1, 1) == 7
    assert est.optimizer_steps(208, 8, 1, 1, 3, max_steps=5) == 5


def test_refusal_says_the_numbers():
    e = est.Estimate(10, 100, 1, 2, 1, "1x GPU (16.0 GiB each)", {"weights": 20 * GIB, "activations": GIB}, 16 * GIB)
    assert not e.fits
    assert e.refusal().startswith("this fine-tune needs about 21.00 GiB per device and 1x GPU (16.0 GiB each) has 16.00 GiB")
    assert "weights 20.00" in e.refusal() and "DOES NOT FIT" in e.lines()[1]


def _session(home):
    from azml_magics.api import Session

    s = Session(home=home)
    s.connect(backend="local")
    return s


def _spec(model: str, extra: str = "") -> str:
    d = sample_dir()
    return f"model: {model}\ndata: {{train: {d}/train_sft.jsonl, test: {d}/test_sft.jsonl}}\n{extra}"


@pytest.fixture
def big_model_dir(tmp_path, tiny_model_dir):
    """A model folder with Phi-3-mini's dimensions and the tiny tokenizer: enough for an estimate (no weights)."""
    folder = tmp_path / "phi3-mini-shape"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, folder / f.name)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **PHI3_MINI}))
    return folder


@pytest.mark.slow
def test_a_run_that_does_not_fit_is_refused_with_the_numbers(tmp_path, big_model_dir):
    session = _session(tmp_path / "home")
    spec = _spec(str(big_model_dir), "parameters: {apply_lora: 'false', per_device_train_batch_size: 8}\n")
    plan = session.plan_finetune(spec, dry_run=True)
    e = plan.estimate
    assert 3.7e9 < e.parts["weights"] / 4 < 3.9e9  # 3.8B parameters, fp32 on the CPU
    assert not e.fits and "no probe: the run does not fit" in e.time_basis
    from azml_magics.plan import effective_table

    assert any("DOES NOT FIT" in n for n in effective_table(plan).notes)
    with pytest.raises(SpecError, match=r"this fine-tune needs about \d+\.\d\d GiB per device and this machine's CPU"):
        session.finetune(spec)
    assert not any((tmp_path / "home" / "jobs").iterdir())  # nothing was created
    assert not (tmp_path / "home" / "data").exists()


@pytest.mark.slow
def test_after_a_run_the_estimate_is_beside_what_was_measured(tmp_path, tiny_model_dir):
    session = _session(tmp_path / "home")
    plan = session.plan_finetune(_spec("azml-tiny-phi3", "parameters: {num_train_epochs: 1}\n"))
    assert plan.estimate.fits and plan.estimate.seconds > 0 and plan.estimate.optimizer_steps == 26
    job = session.finetune(plan.spec, plan=plan)
    status = session.watch(job.name, timeout=300)
    assert status.state == "Completed", status.error
    folder = tmp_path / "home" / "jobs" / job.name
    record = json.loads((folder / "job.json").read_text())
    measured = json.loads((folder / "status.json").read_text())["measured"]
    assert record["estimate"]["optimizer_steps"] == 26 and measured["train_seconds"] > 0 and measured["peak_memory"] > 0
    line = next(line for line in session.logs(job.name).lines if "estimate beside measured" in line)
    assert "s estimated" in line and "s measured" in line and "GiB measured" in line
    print(line)
