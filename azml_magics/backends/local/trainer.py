"""The local fine-tune, run as a child process: ``python -m azml_magics.backends.local.trainer JOB_DIR``.

It reads ``job.json`` (a :class:`~.jobfiles.JobRecord`), reports every step in ``status.json``, writes its log to ``train.log`` (the
parent redirects stdout/stderr there) and its metrics to MLflow, and leaves an MLflow model. It
runs in its own session so Ctrl-C in the notebook does not reach it; SIGTERM (cancel) ends it as
Canceled; any exception ends it as Failed with the error in status.json and the traceback in the log.

Under ``accelerate launch`` (several processes, see ``device``) every process runs this module;
only rank 0 writes status.json, logs and MLflow, and saves the model. The launcher's pid stays the
job's pid (launch.json), so cancel signals the launcher and it stops every process. A SIGTERM with
no ``cancel.json`` beside it came from the launcher because another process failed: Failed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from . import device, jobfiles, params
from .train_data import eval_split_name, split_data, tokenize_all

RANK = int(os.environ.get("RANK", "0"))  # set by accelerate launch (torch elastic); 0 alone
WORLD = int(os.environ.get("WORLD_SIZE", "1"))


class Canceled(BaseException):
    """Raised by the SIGTERM handler; BaseException so no library swallows it."""


class Stopped(BaseException):
    """SIGTERM from the launcher (another process failed), not from a cancel."""


def log(msg: str) -> None:
    if RANK == 0:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Status:
    """status.json, owned by this process while it runs (by rank 0 when there are several)."""

    def __init__(self, folder: Path):
        self.path = folder / "status.json"
        self.data = jobfiles.read_json(self.path) or jobfiles.new_status(folder.name)
        self._last = 0.0

    def save(self, **changes) -> None:
        if RANK != 0:
            return
        self.data.update(changes)
        self.data["updated"] = time.time()
        jobfiles.write_json(self.path, self.data)

    def step(self, name: str, state: str, error: str | None = None) -> None:
        for s in self.data["steps"]:
            if s["name"] == name:
                s["state"] = state
                if state == "Running":
                    s["started"] = time.time()
                else:
                    s["ended"] = time.time()
                s["error"] = error
        self.save(current_step=name if state == "Running" else self.data.get("current_step"))

    def progress(self, value: float, **steps) -> None:
        """Throttled: at most one write a second. ``steps``: train_step and train_steps, where known."""
        now = time.time()
        if now - self._last >= 1.0 or value >= 1.0:
            self._last = now
            self.save(progress=round(min(max(value, 0.0), 1.0), 4), **steps)


# ----------------------------------------------------------------------------- metrics
def metrics_callback(mlflow_client, run_id: str, status: Status):
    """A TrainerCallback that sends loss, eval loss, learning rate, epoch and tokens/s to MLflow."""
    from mlflow.entities import Metric
    from transformers import TrainerCallback

    class ToMlflow(TrainerCallback):
        def __init__(self):
            self.last_tokens = 0.0
            self.last_time = time.time()

        def on_train_begin(self, args, state, control, **kw):
            self.last_time = time.time()

        def on_step_end(self, args, state, control, **kw):
            if state.max_steps:
                status.progress(state.global_step / state.max_steps, train_step=state.global_step,
                                train_steps=state.max_steps)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            now = time.time()
            tokens = logs.get("num_tokens") or state.num_input_tokens_seen
            if "loss" in logs and tokens:
                elapsed = max(now - self.last_time, 1e-6)
                logs["tokens_per_second"] = (float(tokens) - self.last_tokens) / elapsed
                self.last_tokens, self.last_time = float(tokens), now
            stamp = int(now * 1000)
            batch = [
                Metric(key, float(value), stamp, state.global_step)
                for key, value in logs.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            ]
            if batch:
                mlflow_client.log_batch(run_id, metrics=batch)
            shown = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in logs.items()}
            log(f"step {state.global_step}/{state.max_steps}: {json.dumps(shown)}")

    return ToMlflow()


# ----------------------------------------------------------------------------- the job
def set_threads() -> int:
    """AZML_MAGICS_THREADS, else the usable cores shared among this machine's processes."""
    import torch

    wanted = os.environ.get("AZML_MAGICS_THREADS")
    n = int(wanted) if wanted else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not wanted:
        n = (n or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, n or 1))
    return torch.get_num_threads()


BATCHES = ("padding_free", "split", "plain")


def build_trainer(model, tokenizer, train_rows, eval_rows, values, output_dir, seq_len, callbacks=(),
                  batches: str = "padding_free", launch: device.LaunchPlan | None = None, checkpointing: bool = False):
    """TRL's SFTTrainer over pre-tokenized rows, configured from the effective parameters.

    ``batches``: ``padding_free`` (the default) is TRL's own padding-free mode: TRL's random batches,
    each flattened into one row with ``position_ids``, from which transformers 5 builds per-sequence
    attention (SDPA or FlashAttention): no padding at all, the same loss as padded batches (measured
    in benchmarks/local_train.py; each row's first label is -100, so no loss crosses rows).
    ``split`` is our own length-sorted micro-batches (``batching``), ``plain`` TRL's padded batches.
    Padding to max length (pad_to_max_length) needs padded batches, so it falls back to ``plain``.
    """
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    from . import batching

    assert batches in BATCHES, batches
    launch = launch or device.LaunchPlan()
    if str(values.get("pad_to_max_length", "false")) == "true" or (batches == "split" and launch.world_size > 1):
        batches = "plain"  # split micro-batches would be sharded across processes as if they were batches
    group_by_length = batches == "split"
    kwargs = params.sft_kwargs(values, output_dir, bool(eval_rows), seq_len, group_by_length=group_by_length)
    kwargs.update(device.sft_kwargs(launch, checkpointing))
    if batches == "padding_free":
        kwargs.update(padding_free=True, max_length=None)  # the rows are cut at seq_len already
    splits = 1
    if group_by_length:
        lengths = [len(r["input_ids"]) for r in train_rows]
        splits = batching.choose_splits(lengths, kwargs["per_device_train_batch_size"])
        kwargs["gradient_accumulation_steps"] *= splits
    config = SFTConfig(**kwargs)
    peft_config = None
    lora = params.lora_kwargs(values)
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(**lora)
    callbacks = list(callbacks)
    stopping = params.early_stopping(values)
    if stopping and eval_rows:
        callbacks.append(EarlyStoppingCallback(**stopping))
    extra = {"splits": splits} if group_by_length else {}
    return (batching.split_trainer_class() if group_by_length else SFTTrainer)(
        **extra,
        model=model,
        args=config,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def save_model(trainer, tokenizer, values: dict, out: Path, base_ref: str) -> Path:
    """The trained model as a plain Hugging Face folder: LoRA merged, or the adapter plus its base."""
    model = trainer.model
    folder = out / "hf_model"
    merge = str(values.get("merge_lora_weights", "true")) == "true"
    if hasattr(model, "merge_and_unload") and merge:
        model = model.merge_and_unload()
    elif hasattr(model, "peft_config"):
        for cfg in model.peft_config.values():
            cfg.base_model_name_or_path = base_ref
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run(folder: Path) -> int:
    folder = Path(folder).resolve()
    status = Status(folder)
    me = {"pid": os.getpid(), "cmdline": [sys.executable, "-m", jobfiles.TRAINER_MODULE, str(folder)]}
    if WORLD > 1:  # the launcher's pid (launch.json) stays the job's pid: cancel signals the launcher
        me = {"worker_pid": os.getpid()}
    status.save(state="Preparing", started=time.time(), **me)

    def on_term(signum, frame):
        raise Canceled() if (folder / jobfiles.CANCEL_FILE).exists() or WORLD == 1 else Stopped()

    signal.signal(signal.SIGTERM, on_term)
    step = None
    mc = run_id = None
    try:
        from . import models, probe, registry

        job = jobfiles.JobRecord.read(folder)
        values = job.parameters
        launch = device.LaunchPlan.from_json(job.launch)
        home = Path(job.home)
        log(f"job {folder.name}: model {job.model.spec}, {len(values)} parameters, pid {os.getpid()}")
        log(f"device: {device.describe(launch)}")
        for name, why in job.ignored.items():
            log(f"ignored locally: {name} ({why})")
        for note in params.notes(values) + launch.notes:
            log(f"note: {note}")

        step = "validate data"
        status.step(step, "Running")
        train, evaluation = split_data(job.data)
        log(f"data: {len(train)} training and {len(evaluation)} evaluation conversations "
            f"(eval: {eval_split_name(job.data)})")
        status.save(eval_split=eval_split_name(job.data))
        status.step(step, "Completed")

        step = "load model"
        status.step(step, "Running")
        threads = set_threads()
        import torch

        torch.manual_seed(int(values.get("seed", 42)))
        resolved = models.resolve(job.model.spec)
        tokenizer = models.load_tokenizer(resolved)
        lora = params.lora_kwargs(values) is not None
        load = device.model_kwargs(launch, lora, int(os.environ.get("LOCAL_RANK", "0")))
        model = models.load_model(resolved, tokenizer, **load, **params.load_kwargs(values))
        checkpointing = launch.gradient_checkpointing == "true" or (
            launch.gradient_checkpointing == "auto" and bool(job.estimate.get("needs_checkpointing")))
        if launch.qlora:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        n_params = sum(p.numel() for p in model.parameters())
        log(f"loaded {resolved.ref}: {n_params:,} parameters, {threads} CPU threads"
            + (", gradient checkpointing" if checkpointing else ""))
        if RANK == 0:
            mc = registry.client(home)
            run_info = mc.create_run(
                job.experiment_id, run_name=folder.name,
                tags={"azml.job": folder.name, "azml.base_model": resolved.ref, "azml.backend": "local",
                      "azml.data_fingerprint": job.data.fingerprint},
            )
            run_id = run_info.info.run_id
            status.save(run_id=run_id, experiment_id=job.experiment_id)
            from mlflow.entities import Param

            mc.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(values.items())])
        status.step(step, "Completed")

        step = "preprocess"
        status.step(step, "Running")
        seq_len = params.max_length(values, getattr(model.config, "max_position_embeddings", None))
        train_rows, dropped = tokenize_all(tokenizer, train, seq_len)
        eval_rows, eval_dropped = tokenize_all(tokenizer, evaluation, seq_len)
        if not train_rows:
            raise ValueError(f"no training conversation keeps an assistant token within max_seq_length={seq_len}")
        tokens = sum(len(r["input_ids"]) for r in train_rows)
        log(f"tokenized: {len(train_rows)} train rows ({tokens} tokens, dropped {dropped}), "
            f"{len(eval_rows)} eval rows (dropped {eval_dropped}), max length {seq_len}")
        status.step(step, "Completed")

        step = "fine-tune"
        status.step(step, "Running")
        status.save(state="Running")
        out = folder / "output"
        trainer = build_trainer(
            model, tokenizer, train_rows, eval_rows, values, str(out / "checkpoints"), seq_len,
            callbacks=[metrics_callback(mc, run_id, status)] if RANK == 0 else [],
            launch=launch, checkpointing=checkpointing,
        )
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for noisy in (PrinterCallback, ProgressCallback):  # our on_log line is the one line per event
            trainer.remove_callback(noisy)
        if trainer.args.padding_free:
            log("batches: TRL's padding-free mode (no padding; per-sequence attention from position_ids)")
        if getattr(trainer, "splits", 1) > 1:
            log(f"each random batch is computed as {trainer.splits} length-sorted micro-batches "
                "(less padding, the same gradient)")
        resume = str(values.get("resume_from_checkpoint", "false")) == "true" and any((out / "checkpoints").glob("checkpoint-*"))
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=True if resume else None)
        measured = probe.measure(time.perf_counter() - started, launch)
        log(f"training done: {json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in result.metrics.items()})}")
        status.progress(1.0)
        status.save(measured=measured)
        if job.estimate:
            log("estimate beside measured: " + probe.compare(job.estimate, measured))
        status.step(step, "Completed")

        step = "save MLflow model"
        status.step(step, "Running")
        status.save(state="Finalizing")
        if launch.distributed in ("fsdp", "deepspeed"):  # sharded: every process takes part in the save
            trainer.save_model(str(out / "hf_model"))
        if RANK != 0:
            return 0
        if launch.distributed in ("fsdp", "deepspeed"):
            hf_dir = out / "hf_model"
            tokenizer.save_pretrained(hf_dir)
        else:
            hf_dir = save_model(trainer, tokenizer, values, out, resolved.load_path)
        logged = registry.log_hf_model(home, run_id, hf_dir)
        mc.set_terminated(run_id, "FINISHED")
        status.step(step, "Completed")
        status.save(state="Completed", ended=time.time(), outputs={**logged, "hf_model": str(hf_dir)})
        log(f"job {folder.name} completed; model {logged['model_uri']}")
        return 0
    except Canceled:
        log("canceled (SIGTERM)")
        if step:
            status.step(step, "Canceled")
        status.save(state="Canceled", ended=time.time(), error="canceled by the user")
        _end_run(mc, run_id, "KILLED")
        return 143
    except BaseException as exc:  # noqa: BLE001 - every failure must reach status.json
        if isinstance(exc, Stopped) or _peer_lost(exc):
            message = "stopped: another training process failed (its first error is in train.log)"
            if not isinstance(exc, Stopped):
                traceback.print_exc()
        else:
            traceback.print_exc()
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        if step:
            status.step(step, "Failed", message)
        status.save(state="Failed", ended=time.time(), error=f"{step or 'start'} failed: {message}")
        _end_run(mc, run_id, "FAILED")
        return 1


def _peer_lost(exc: BaseException) -> bool:
    """A collective that failed because another process died (gloo/NCCL say so in a RuntimeError)."""
    text = str(exc)
    return WORLD > 1 and isinstance(exc, RuntimeError) and any(
        k in text for k in ("Connection reset by peer", "Connection closed by peer", "NCCL", "gloo"))


def _end_run(mc, run_id, state: str) -> None:
    if mc is not None and run_id is not None:
        try:
            mc.set_terminated(run_id, state)
        except Exception:  # noqa: BLE001 - the status already says what happened
            pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m azml_magics.backends.local.trainer JOB_DIR", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the notebook's Ctrl-C detaches, never kills
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
