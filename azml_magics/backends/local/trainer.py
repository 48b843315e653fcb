"""The local fine-tune, run as a child process: ``python -m azml_magics.backends.local.trainer JOB_DIR``.

It reads ``job.json``, reports every step in ``status.json``, writes its log to ``train.log`` (the
parent redirects stdout/stderr there) and its metrics to MLflow, and leaves an MLflow model. It
runs in its own session so Ctrl-C in the notebook does not reach it; SIGTERM (cancel) ends it as
Canceled; any exception ends it as Failed with the error in status.json and the traceback in the log.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

from . import jobfiles, params

MIN_TRAIN_ROWS = 10


class Canceled(BaseException):
    """Raised by the SIGTERM handler; BaseException so no library swallows it."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Status:
    """status.json, owned by this process while it runs."""

    def __init__(self, folder: Path):
        self.path = folder / "status.json"
        self.data = jobfiles.read_json(self.path) or jobfiles.new_status(folder.name)
        self._last = 0.0

    def save(self, **changes) -> None:
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

    def progress(self, value: float) -> None:
        """Throttled: at most one write a second."""
        now = time.time()
        if now - self._last >= 1.0 or value >= 1.0:
            self._last = now
            self.save(progress=round(min(max(value, 0.0), 1.0), 4))


# ----------------------------------------------------------------------------- data
def read_conversations(path: str) -> list[list[dict]]:
    """The ``messages`` of every usable row (Azure's rules: at least two messages, one from the assistant)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list) or len(messages) < 2:
                continue
            if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
                continue
            rows.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return rows


def split_data(files: dict, seed: int) -> tuple[list, list]:
    """train/eval conversations, split as the Azure pipeline does when no validation file is given."""
    train = read_conversations(files["train"])
    if files.get("validation"):
        evaluation = read_conversations(files["validation"])
    elif files.get("test"):  # train + test: validation is the last 20% of train
        cut = max(1, len(train) * 4 // 5)
        train, evaluation = train[:cut], train[cut:]
    else:  # train only: 80/10/10
        shuffled = train[:]
        random.Random(seed).shuffle(shuffled)
        n = len(shuffled)
        train, evaluation = shuffled[: n * 8 // 10], shuffled[n * 8 // 10 : n * 9 // 10]
    if len(train) < MIN_TRAIN_ROWS:
        raise ValueError(
            f"only {len(train)} usable training conversations after filtering; at least {MIN_TRAIN_ROWS} are needed"
        )
    return train, evaluation


# ----------------------------------------------------------------------------- tokenize
def has_generation_markers(template: str | None) -> bool:
    return bool(template) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def _ids(tokenizer, messages, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)
    return list(out["input_ids"])


def tokenize_conversation(tokenizer, messages: list[dict], max_len: int) -> dict | None:
    """input_ids and labels (-100 outside assistant replies and their end-of-turn); None if no reply fits."""
    if has_generation_markers(tokenizer.chat_template):
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    else:  # no markers: each reply is what its turn adds after the generation prompt
        ids = _ids(tokenizer, messages)
        mask = [0] * len(ids)
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = len(_ids(tokenizer, messages[:i], add_generation_prompt=True))
            end = len(_ids(tokenizer, messages[: i + 1]))
            mask[start:end] = [1] * (end - start)
    ids, mask = ids[:max_len], mask[:max_len]
    if not any(mask):
        return None
    labels = [t if k else -100 for t, k in zip(ids, mask)]
    return {"input_ids": ids, "labels": labels}


def tokenize_all(tokenizer, conversations: list, max_len: int) -> tuple[list[dict], int]:
    rows, dropped = [], 0
    for messages in conversations:
        row = tokenize_conversation(tokenizer, messages, max_len)
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    return rows, dropped


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
                status.progress(state.global_step / state.max_steps)

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
    import torch

    wanted = os.environ.get("AZML_MAGICS_THREADS")
    n = int(wanted) if wanted else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, n or 1))
    return torch.get_num_threads()


def build_trainer(model, tokenizer, train_rows, eval_rows, values, output_dir, seq_len, callbacks=(), group_by_length=True):
    """TRL's SFTTrainer over pre-tokenized rows, configured from the effective parameters.

    ``group_by_length`` (the default) computes each random batch as length-sorted micro-batches,
    which pads less and trains the same (see ``batching``); off, it is TRL's plain random batches.
    """
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    from . import batching

    kwargs = params.sft_kwargs(values, output_dir, bool(eval_rows), seq_len, group_by_length=group_by_length)
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
    job = jobfiles.read_json(folder / "job.json")
    status.save(
        state="Preparing", pid=os.getpid(), cmdline=[sys.executable, "-m", jobfiles.TRAINER_MODULE, str(folder)],
        started=time.time(),
    )

    def on_term(signum, frame):
        raise Canceled()

    signal.signal(signal.SIGTERM, on_term)
    step = None
    mc = run_id = None
    try:
        from . import models, registry

        values = job["parameters"]
        home = Path(job["home"])
        log(f"job {folder.name}: model {job['model']['spec']}, {len(values)} parameters, pid {os.getpid()}")
        for name, why in job.get("ignored", {}).items():
            log(f"ignored locally: {name} ({why})")
        for note in params.notes(values):
            log(f"note: {note}")

        step = "validate data"
        status.step(step, "Running")
        train, evaluation = split_data(job["data"], int(values.get("seed", 42)))
        log(f"data: {len(train)} training and {len(evaluation)} evaluation conversations")
        status.step(step, "Completed")

        step = "load model"
        status.step(step, "Running")
        threads = set_threads()
        import torch

        torch.manual_seed(int(values.get("seed", 42)))
        resolved = models.resolve(job["model"]["spec"])
        tokenizer = models.load_tokenizer(resolved)
        model = models.load_model(resolved, tokenizer, **params.load_kwargs(values))
        n_params = sum(p.numel() for p in model.parameters())
        log(f"loaded {resolved.ref}: {n_params:,} parameters, {threads} CPU threads")
        mc = registry.client(home)
        run_info = mc.create_run(
            job["experiment_id"], run_name=folder.name,
            tags={"azml.job": folder.name, "azml.base_model": resolved.ref, "azml.backend": "local",
                  "azml.data_fingerprint": job["data"].get("fingerprint", "")},
        )
        run_id = run_info.info.run_id
        status.save(run_id=run_id, experiment_id=job["experiment_id"])
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
            callbacks=[metrics_callback(mc, run_id, status)],
        )
        if getattr(trainer, "splits", 1) > 1:
            log(f"each random batch is computed as {trainer.splits} length-sorted micro-batches "
                "(less padding, the same gradient)")
        resume = str(values.get("resume_from_checkpoint", "false")) == "true" and any((out / "checkpoints").glob("checkpoint-*"))
        result = trainer.train(resume_from_checkpoint=True if resume else None)
        log(f"training done: {json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in result.metrics.items()})}")
        status.progress(1.0)
        status.step(step, "Completed")

        step = "save MLflow model"
        status.step(step, "Running")
        status.save(state="Finalizing")
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
        traceback.print_exc()
        message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        if step:
            status.step(step, "Failed", message)
        status.save(state="Failed", ended=time.time(), error=f"{step or 'start'} failed: {message}")
        _end_run(mc, run_id, "FAILED")
        return 1


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
