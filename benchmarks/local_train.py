"""Local fine-tune throughput: our trainer against a plain TRL SFT script, same run, same loss.

Both train the tiny model on the same ultrachat-shaped conversations (multi-turn, long-tailed
lengths: most short, a few cut at max_seq_length) with the same hyperparameters, seed, epochs and
schedule, in this process. The plain side is what a user writes from the TRL docs: a ``messages``
dataset, ``assistant_only_loss=True``, random batches. Ours is ``trainer.build_trainer``: rows we
tokenize once (with the assistant mask) before training, and each random batch computed as
length-sorted micro-batches (``batching``), which pads less and trains the same.

Measured:
  tokens/s: non-padding tokens of the training set per second of ``trainer.train()``.
  padding: the share of the tokens the model computed that were padding, counted in the collator.
  eval loss: ``trainer.evaluate()`` on the same held-out conversations, in-order batches of 8 for
    both (so it is computed the same way), after training.
The sides run in back-to-back pairs, alternating which goes first, and pair i uses seed 42+i for
both; the speedup is the median of the pairs' ratios (load from other jobs on a shared machine falls
on both alike), loss_delta is |mean ours - mean plain| / mean plain over the pairs' eval losses.
One torch thread by default: on a machine shared with other jobs, two threads that must meet at
every operation slow down several-fold whenever another job takes a core, and single timings swing
4x; ``--threads 2`` measures what the trainer uses on an idle 2-core machine.

Run: ``python benchmarks/local_train.py [--rows 960] [--epochs 2] [--pairs 3] [--threads N] [--splits M]``
Last line: ``local_train: speedup=<ours/plain> loss_delta=<relative>``. Targets: speedup >= 1.2,
loss_delta <= 0.02.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {
    "num_train_epochs": 1,
    "learning_rate": 3e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 5,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "max_seq_length": 512,
    "logging_steps": 10,
    "evaluation_strategy": "disable",
    "apply_lora": "false",
    "seed": 42,
}


def ultrachat_shaped(n: int, seed: int = 0) -> list[list[dict]]:
    """Multi-turn conversations with a long-tailed turn count, built from the bundled sample's turns."""
    rng = random.Random(seed)
    pairs = []
    with open(ROOT / "azml_magics" / "sample_data" / "train_sft.jsonl") as fh:
        for line in fh:
            msgs = json.loads(line)["messages"]
            pairs += [msgs[i : i + 2] for i in range(0, len(msgs) - 1, 2) if msgs[i]["role"] == "user"]
    out = []
    for _ in range(n):
        turns = max(1, min(40, int(rng.lognormvariate(1.3, 0.9))))
        convo = []
        for _ in range(turns):
            convo += rng.choice(pairs)
        out.append(convo)
    return out


def run_ours(model_dir, tok, train, evaluation, seed: int) -> dict:
    from transformers import AutoModelForCausalLM

    from azml_magics.backends.local import trainer as ours
    from azml_magics.spec import merge_parameters

    values = merge_parameters({**SETTINGS, "seed": seed}).values
    train_rows, _ = ours.tokenize_all(tok, train, SETTINGS["max_seq_length"])
    eval_rows, _ = ours.tokenize_all(tok, evaluation, SETTINGS["max_seq_length"])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out:
        t = ours.build_trainer(model, tok, train_rows, eval_rows, values, out, SETTINGS["max_seq_length"])
        t.args.save_strategy = "no"
        return _measure(t, sum(len(r["input_ids"]) for r in train_rows))


def run_plain(model_dir, tok, train, evaluation, seed: int) -> dict:
    """What a user writes from the TRL docs: a messages dataset, assistant_only_loss, defaults otherwise."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    s = SETTINGS
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out, num_train_epochs=s["num_train_epochs"], learning_rate=s["learning_rate"],
            lr_scheduler_type=s["lr_scheduler_type"], warmup_steps=s["warmup_steps"],
            per_device_train_batch_size=s["per_device_train_batch_size"],
            per_device_eval_batch_size=s["per_device_eval_batch_size"], max_length=s["max_seq_length"],
            logging_steps=s["logging_steps"], seed=seed, assistant_only_loss=True,
            use_cpu=True, bf16=False, activation_checkpointing=False, save_strategy="no", report_to="none",
            disable_tqdm=True,
        )
        t = SFTTrainer(model=model, args=config, processing_class=tok,
                       train_dataset=Dataset.from_list([{"messages": m} for m in train]),
                       eval_dataset=Dataset.from_list([{"messages": m} for m in evaluation]))
        return _measure(t, sum(len(r["input_ids"]) for r in t.train_dataset))


class CountingCollator:
    """Wraps a trainer's collator to count the tokens computed (padded) and the real ones."""

    def __init__(self, inner):
        self.inner, self.padded, self.real = inner, 0, 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.padded += batch["input_ids"].numel()
        self.real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
        return batch


def _measure(t, tokens_per_epoch: int) -> dict:
    from transformers.trainer_callback import PrinterCallback

    t.remove_callback(PrinterCallback)  # the per-step log dicts; the summary lines say enough
    counter = t.data_collator = CountingCollator(t.data_collator)
    start = time.perf_counter()
    t.train()
    seconds = time.perf_counter() - start
    t.data_collator = counter.inner
    tokens = tokens_per_epoch * SETTINGS["num_train_epochs"]
    return {"tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens,
            "padding": 1 - counter.real / counter.padded, "micro_batches": t.args.gradient_accumulation_steps,
            "eval_loss": t.evaluate()["eval_loss"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: the usable cores)")
    parser.add_argument("--splits", type=int, default=0, help="force micro-batches per step (default: chosen)")
    args = parser.parse_args()
    SETTINGS["num_train_epochs"] = args.epochs

    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer

    from azml_magics.backends.local import batching, tiny_model

    if args.splits:
        batching.choose_splits = lambda *a, **k: args.splits
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    model_dir = tiny_model.ensure_tiny_model()
    tok = AutoTokenizer.from_pretrained(model_dir)
    data = ultrachat_shaped(args.rows + args.rows // 8, seed=1)
    train, evaluation = data[: args.rows], data[args.rows :]
    lengths = sorted(min(len(tok.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]),
                         SETTINGS["max_seq_length"]) for m in train)
    print(f"data: {len(train)} train / {len(evaluation)} eval conversations; tokens per row "
          f"min {lengths[0]} median {lengths[len(lengths) // 2]} p90 {lengths[len(lengths) * 9 // 10]} max {lengths[-1]}; "
          f"{args.epochs} epoch(s), {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    runs = {"plain": [], "ours": []}
    for i in range(args.pairs):
        seed = SETTINGS["seed"] + i
        order = (("plain", run_plain), ("ours", run_ours))
        for name, fn in order if i % 2 == 0 else order[::-1]:
            r = fn(model_dir, tok, train, evaluation, seed)
            runs[name].append(r)
            print(f"pair {i + 1} seed {seed} {name:5s}: {r['tokens_per_s']:7.0f} tokens/s  {r['seconds']:6.1f} s  "
                  f"padding {r['padding']:.0%}  micro-batches/step {r['micro_batches']}  eval_loss {r['eval_loss']:.6f}  "
                  f"load {os.getloadavg()[0]:.1f}")
    ratios = [o["tokens_per_s"] / p["tokens_per_s"] for o, p in zip(runs["ours"], runs["plain"])]
    plain_loss = statistics.mean(r["eval_loss"] for r in runs["plain"])
    ours_loss = statistics.mean(r["eval_loss"] for r in runs["ours"])
    delta = abs(ours_loss - plain_loss) / plain_loss
    print(f"speedup per pair: {' '.join(f'{x:.2f}' for x in ratios)}; eval loss mean over {args.pairs} seed(s): "
          f"plain {plain_loss:.6f}, ours {ours_loss:.6f}")
    print(f"local_train: speedup={statistics.median(ratios):.2f} loss_delta={delta:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
