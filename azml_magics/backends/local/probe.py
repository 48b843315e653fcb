"""The local estimate: the model's shape, the data's tokens, and a short measured probe of the speed.

``estimate_plan`` is what ``LocalBackend.estimate`` returns for a plan, before anything is created:
tokens counted with the model's tokenizer exactly as the trainer will tokenize them, optimizer steps
as the Trainer counts them, peak memory per device from ``azml_magics.estimate`` (the model's shape
read from its config on the meta device, no weights loaded), and time from a few optimizer steps
measured here on random rows of the real data with the real settings. ``measure`` and ``compare``
are the trainer's side: what the run took, beside the estimate.
"""

from __future__ import annotations

import contextlib
import gc
import math
import random
import sys
import time

from ... import estimate as est
from ..base import DataFiles
from . import device, params, train_data, trainer

PROBE_STEPS = 3  # measured optimizer steps, after one warm-up step


def model_shape(load_path: str, lora: dict | None, trust_remote_code: bool = False) -> est.ModelShape:
    """Parameter counts from the model's config, built on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(load_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    total = sum(p.numel() for p in model.parameters())
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n]
    linear_params = sum(m.weight.numel() for _, m in linears)
    # LoRA on "all-linear": r x (in + out) per linear layer but the output head
    trainable = sum(lora["r"] * (m.in_features + m.out_features) for _, m in linears) if lora else total
    text = getattr(config, "text_config", config)
    return est.ModelShape(total, trainable, linear_params, int(getattr(text, "num_hidden_layers", 1)),
                          int(getattr(text, "hidden_size", 1)), int(getattr(text, "vocab_size", 1)))


def _files(report) -> DataFiles:
    paths = {split: str(f.path) for split, f in report.files.items()}
    return DataFiles(train=paths[report.train_split], test=paths.get(report.test_split),
                     validation=paths.get("validation"))


def estimate_plan(plan, dev: device.Device | None = None, probe_steps: int | None = None) -> est.Estimate:
    """The estimate for ``plan`` (a FinetunePlan whose data was checked)."""
    from . import models

    values = plan.effective.values
    local = plan.spec.local
    dev = dev or device.detect()
    launch = device.plan_launch(values, local, dev, plan.effective.source_of("precision") == "your spec")
    resolved = models.resolve(plan.spec.model)
    tokenizer = models.load_tokenizer(resolved)
    lora = params.lora_kwargs(values)
    shape = model_shape(resolved.load_path, lora, str(values.get("trust_remote_code")) == "true")
    train, evaluation = train_data.split_data(_files(plan.data_report))
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolved.load_path)
    seq_len = params.max_length(values, getattr(config, "max_position_embeddings", None))
    rows, _ = train_data.tokenize_all(tokenizer, train, seq_len)
    eval_rows, _ = train_data.tokenize_all(tokenizer, evaluation, seq_len)
    tokens = sum(len(r["input_ids"]) for r in rows)
    longest = max((len(r["input_ids"]) for r in rows), default=1)
    batch = int(values.get("per_device_train_batch_size", 1))
    accum = int(values.get("gradient_accumulation_steps", 1))
    epochs = float(values.get("num_train_epochs", 1))
    steps = est.optimizer_steps(len(rows), batch, accum, launch.world_size, epochs, int(values.get("max_steps", -1)))
    sharding = {"deepspeed": f"zero{launch.deepspeed_stage}", "fsdp": "fsdp"}.get(launch.distributed, "none")

    def parts(checkpointing: bool) -> dict:
        return est.memory(shape, precision=launch.precision, lora=lora is not None, qlora=launch.qlora, batch=batch,
                          seq_len=longest, processes=launch.world_size, sharding=sharding,
                          checkpointing=checkpointing, optim=str(values.get("optim", "adamw_torch")),
                          gpu=launch.device == "cuda")

    # processes on one CPU share its memory (and its cores)
    sharing = launch.processes if launch.device == "cpu" else 1
    memory_limit = dev.memory // sharing if dev.memory else None
    out = est.Estimate(len(rows), tokens, epochs, steps, launch.world_size, dev.describe(), parts(False), memory_limit)
    if launch.gradient_checkpointing == "true":
        out.checkpointing, out.parts = True, parts(True)
    elif not out.fits and launch.gradient_checkpointing == "auto":
        with_ckpt = parts(True)
        if sum(with_ckpt.values()) <= est.HEADROOM * (memory_limit or 0):
            out.parts, out.checkpointing, out.needs_checkpointing = with_ckpt, True, True
            out.notes.append("gradient checkpointing switched on: without it the run does not fit")
    if sharing > 1:
        out.notes.append(f"{sharing} processes share this machine's memory: the limit shown is a share of it")
    steps_to_probe = PROBE_STEPS if probe_steps is None else probe_steps
    if local is not None and local.probe_steps is not None:
        steps_to_probe = local.probe_steps
    if not out.fits:
        out.time_basis = "no probe: the run does not fit in memory"
    elif steps_to_probe <= 0:
        out.time_basis = "probe switched off (local.probe_steps: 0)"
    else:
        rate = probe(resolved, tokenizer, values, launch, rows, steps_to_probe, seq_len, out.checkpointing)
        evaluations = 0 if not eval_rows or str(values.get("evaluation_strategy", "epoch")) == "disable" else math.ceil(epochs)
        scale = (steps / est.optimizer_steps(len(rows), batch, accum, launch.world_size, epochs)) if int(values.get("max_steps", -1)) > 0 else 1.0
        parallel = launch.world_size if launch.device != "cpu" else 1
        out.seconds = est.train_seconds(tokens, epochs * scale, rate, parallel,
                                        sum(len(r["input_ids"]) for r in eval_rows), evaluations)
        out.time_basis = (f"{steps_to_probe} optimizer steps measured on {launch.device.upper()}: {rate:,.0f} tokens/s"
                          + (f" per process, assumed to scale to {parallel} processes" if parallel > 1 else "")
                          + (", processes sharing the CPU cores add no speed" if sharing > 1 else "")
                          + "; model loading and saving not included")
    return out


def probe(resolved, tokenizer, values: dict, launch: device.LaunchPlan, rows: list[dict], steps: int, seq_len: int,
          checkpointing: bool) -> float:
    """Tokens per second of ``steps`` optimizer steps (after one warm-up) on random rows, one process."""
    import tempfile

    import torch

    from . import models

    batch = int(values.get("per_device_train_batch_size", 1)) * int(values.get("gradient_accumulation_steps", 1))
    sample = random.Random(0).sample(rows, min(len(rows), batch * (steps + 1)))
    probe_values = {**values, "max_steps": steps + 1, "evaluation_strategy": "disable", "logging_steps": 10**6,
                    "apply_early_stopping": "false"}
    one = device.LaunchPlan.from_json({**launch.to_json(), "processes": 1, "nodes": 1, "distributed": "none"})
    with _quiet():
        model = models.load_model(resolved, tokenizer, **device.model_kwargs(one, params.lora_kwargs(values) is not None),
                                  **params.load_kwargs(values))
    times: list[float] = []
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="azml-probe-") as out, _quiet():
        t = trainer.build_trainer(model, tokenizer, sample, [], probe_values, out, seq_len, callbacks=[Clock()],
                                  launch=one, checkpointing=checkpointing)
        t.args.save_strategy = "no"
        from transformers.trainer_callback import PrinterCallback

        t.remove_callback(PrinterCallback)
        t.train()
    del t, model
    gc.collect()
    if launch.device == "cuda":
        torch.cuda.empty_cache()
    measured = times[-1] - times[0] if len(times) > 1 else 0.0
    per_row = sum(len(r["input_ids"]) for r in sample) / max(1, len(sample))
    return per_row * batch * (len(times) - 1) / measured if measured > 0 else float("inf")


@contextlib.contextmanager
def _quiet():
    """No progress bars or library warnings in the notebook while the probe runs (restored after)."""
    import datasets
    import transformers

    bars = datasets.is_progress_bar_enabled()
    tbars = transformers.utils.logging.is_progress_bar_enabled()
    level = transformers.logging.get_verbosity()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
        if tbars:
            transformers.utils.logging.enable_progress_bar()
        if bars:
            datasets.enable_progress_bars()


# ----------------------------------------------------------------------------- after the run
def measure(seconds: float, launch: device.LaunchPlan) -> dict:
    """What the run took: training seconds and this process's peak memory on its device."""
    import resource

    import torch

    if launch.device == "cuda":
        peak = int(torch.cuda.max_memory_allocated())
    elif launch.device == "mps" and hasattr(torch.mps, "driver_allocated_memory"):
        peak = int(torch.mps.driver_allocated_memory())
    else:  # Linux reports KiB, macOS bytes
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = int(rss if sys.platform == "darwin" else rss * 1024)
    return {"train_seconds": round(seconds, 3), "peak_memory": peak}


def compare(estimate: dict, measured: dict) -> str:
    """'time 41 s estimated, 38 s measured; peak memory ...' for the log."""
    parts = []
    if estimate.get("seconds"):
        parts.append(f"time {estimate['seconds']:.1f} s estimated, {measured['train_seconds']:.1f} s measured")
    if estimate.get("memory_per_device"):
        parts.append(f"peak memory per device {estimate['memory_per_device'] / 2**30:.2f} GiB estimated, "
                     f"{measured['peak_memory'] / 2**30:.2f} GiB measured")
    return "; ".join(parts) or "no estimate"
