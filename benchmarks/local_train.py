"""Local fine-tune throughput: our trainer against TRL at its best setting that trains the same way.

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

Three sides: plain TRL (random padded batches), TRL's own ``padding_free=True`` (no packing; each
batch flattened into one row, transformers 5 builds the per-sequence attention from ``position_ids``
with SDPA), and ours. The baseline is the faster TRL side of each pair. ``--model phi3-28m`` trains
a Phi-3-architecture model of about 28M parameters (8 layers, hidden 512, built offline with the
tiny tokenizer); MFU is our achieved FLOP/s (6 x matmul parameters x tokens, plus attention's
12 x layers x hidden x row length per token) over this machine's fp32 matmul peak measured in the
same run (the best of several 2048 x 2048 matmuls on the same threads).

Run: ``python benchmarks/local_train.py [--model tiny|phi3-28m] [--rows 960] [--epochs 2] [--pairs 3] [--threads N]``
Last line: ``local_train: speedup=<ours/best TRL> loss_delta=<relative> mfu=<fraction> baseline=<name>``.
Targets: speedup >= 1.0 against the best TRL setting with eval loss within 0.5%, MFU >= 0.6 on the
larger model.
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
    from azml_magics.plan import merge_parameters

    inputs = {k: v for k, v in SETTINGS.items() if k != "batches"}  # batches is this script's option, not an input
    values = merge_parameters({**inputs, "seed": seed}).values
    train_rows, _ = ours.tokenize_all(tok, train, SETTINGS["max_seq_length"])
    eval_rows, _ = ours.tokenize_all(tok, evaluation, SETTINGS["max_seq_length"])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out:
        t = ours.build_trainer(model, tok, train_rows, eval_rows, values, out, SETTINGS["max_seq_length"],
                               batches=SETTINGS.get("batches", "padding_free"))
        t.args.save_strategy = "no"
        return _measure(t, sum(len(r["input_ids"]) for r in train_rows))


def run_padding_free(model_dir, tok, train, evaluation, seed: int) -> dict:
    """TRL's own padding-free mode (no packing): the best TRL setting that trains the same rows per step."""
    return run_plain(model_dir, tok, train, evaluation, seed, padding_free=True)


def _truncated(tok, conversations) -> list[dict]:
    """Rows tokenized and cut at max_seq_length as the plain side's TRL does (padding-free TRL does not
    cut rows itself), with TRL's own assistant mask column."""
    from azml_magics.backends.local import trainer as ours

    rows, _ = ours.tokenize_all(tok, conversations, SETTINGS["max_seq_length"])
    return [{"input_ids": r["input_ids"], "assistant_masks": [int(x != -100) for x in r["labels"]]} for r in rows]


def run_plain(model_dir, tok, train, evaluation, seed: int, padding_free: bool = False) -> dict:
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
            per_device_eval_batch_size=s["per_device_eval_batch_size"],
            max_length=None if padding_free else s["max_seq_length"],
            logging_steps=s["logging_steps"], seed=seed,
            assistant_only_loss=not padding_free,  # pre-tokenized rows: TRL folds assistant_masks into labels
            use_cpu=True, bf16=False, activation_checkpointing=False, save_strategy="no", report_to="none",
            disable_tqdm=True, padding_free=padding_free,
        )
        if padding_free:
            train_set, eval_set = Dataset.from_list(_truncated(tok, train)), Dataset.from_list(_truncated(tok, evaluation))
        else:
            train_set = Dataset.from_list([{"messages": m} for m in train])
            eval_set = Dataset.from_list([{"messages": m} for m in evaluation])
        t = SFTTrainer(model=model, args=config, processing_class=tok, train_dataset=train_set, eval_dataset=eval_set)
        return _measure(t, sum(len(r["input_ids"]) for r in t.train_dataset))


class CountingCollator:
    """Wraps a trainer's collator to count the tokens computed (padded) and the real ones."""

    def __init__(self, inner):
        self.inner, self.padded, self.real = inner, 0, 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.padded += batch["input_ids"].numel()
        if "attention_mask" in batch:
            self.real += int(batch["attention_mask"].sum())
        else:  # padding-free: one flattened row, no padding at all
            self.real += batch["input_ids"].numel()
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


def matmul_peak(threads: int, n: int = 2048, tries: int = 8) -> float:
    """This machine's fp32 matmul FLOP/s on ``threads`` threads: the best of ``tries`` n x n products."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops_per_token(model_dir, mean_len: float) -> float:
    """Training FLOPs per token: 6 x matmul parameters (the output head included) + attention."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6 * matmul + 12 * config.num_hidden_layers * config.hidden_size * mean_len


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "phi3-28m"), default="tiny")
    parser.add_argument("--rows", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: the usable cores)")
    parser.add_argument("--splits", type=int, default=0, help="force micro-batches per step (default: chosen)")
    parser.add_argument("--batches", choices=("padding_free", "split", "plain"), default="padding_free",
                        help="our trainer's batches (default: what the local backend uses)")
    parser.add_argument("--no-plain", action="store_true",
                        help="leave out plain TRL (padded batches: 5x slower than padding-free on the 28M model; the "
                             "baseline is then TRL's padding-free side)")
    args = parser.parse_args()
    SETTINGS["num_train_epochs"] = args.epochs
    SETTINGS["batches"] = args.batches

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
    threads = args.threads or len(os.sched_getaffinity(0))
    peak = matmul_peak(threads)
    torch.set_num_threads(threads)
    scratch = tempfile.TemporaryDirectory(prefix="azml-bench-")
    from bench_models import build_phi3

    model_dir = tiny_model.ensure_tiny_model() if args.model == "tiny" else build_phi3(Path(scratch.name) / "m")
    tok = AutoTokenizer.from_pretrained(model_dir)
    data = ultrachat_shaped(args.rows + args.rows // 8, seed=1)
    train, evaluation = data[: args.rows], data[args.rows :]
    lengths = sorted(min(len(tok.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]),
                         SETTINGS["max_seq_length"]) for m in train)
    per_token = flops_per_token(model_dir, sum(lengths) / len(lengths))
    print(f"model {args.model}: {per_token / 6 / 1e6:.1f}M matmul parameters; data: {len(train)} train / "
          f"{len(evaluation)} eval conversations; tokens per row min {lengths[0]} median {lengths[len(lengths) // 2]} "
          f"p90 {lengths[len(lengths) * 9 // 10]} max {lengths[-1]}; {args.epochs} epoch(s), {torch.get_num_threads()} "
          f"threads, fp32 matmul peak {peak / 1e9:.1f} GFLOP/s, load {os.getloadavg()[0]:.1f}")
    sides = (("plain", run_plain), ("padding_free", run_padding_free), ("ours", run_ours))
    if args.no_plain:
        sides = sides[1:]
    runs = {name: [] for name, _ in sides}
    for i in range(args.pairs):
        seed = SETTINGS["seed"] + i
        for name, fn in sides if i % 2 == 0 else sides[::-1]:
            r = fn(model_dir, tok, train, evaluation, seed)
            runs[name].append(r)
            print(f"round {i + 1} seed {seed} {name:12s}: {r['tokens_per_s']:7.0f} tokens/s  {r['seconds']:6.1f} s  "
                  f"padding {r['padding']:.0%}  micro-batches/step {r['micro_batches']}  eval_loss {r['eval_loss']:.6f}  "
                  f"GFLOP/s {r['tokens_per_s'] * per_token / 1e9:.1f}  load {os.getloadavg()[0]:.1f}")
    best = max([n for n in ("plain", "padding_free") if runs.get(n)], key=lambda n: statistics.median(r["tokens_per_s"] for r in runs[n]))
    ratios = [o["tokens_per_s"] / b["tokens_per_s"] for o, b in zip(runs["ours"], runs[best])]
    loss = {n: statistics.mean(r["eval_loss"] for r in runs[n]) for n in runs}
    delta = abs(loss["ours"] - loss[best]) / loss[best]
    mfu = statistics.median(r["tokens_per_s"] for r in runs["ours"]) * per_token / peak
    print(f"speedup per round vs {best}: {' '.join(f'{x:.2f}' for x in ratios)}; eval loss mean over {args.pairs} "
          f"seed(s): " + ", ".join(f"{n} {v:.6f}" for n, v in loss.items()))
    print(f"local_train: speedup={statistics.median(ratios):.2f} loss_delta={delta:.1e} mfu={mfu:.2f} baseline={best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
