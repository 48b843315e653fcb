"""Local fine-tune throughput: our trainer setup against a plain TRL SFT script, same run.

Both train the tiny model on the same ultrachat-shaped conversations (multi-turn, long-tailed
lengths: most short, a few near max_seq_length) with the same hyperparameters, in this process, one
after the other, twice (alternating, best of two). Throughput is non-padding tokens per second of
``trainer.train()``. Ours wins by wasting less on padding: length-grouped batches over rows we
tokenize once, with the assistant mask, before training. The final eval losses must agree within 2%.

Run: ``python benchmarks/local_train.py [--rows 480] [--epochs 1]``
Last line: ``local_train: speedup=<ours/plain> loss_delta=<relative>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def run_ours(model_dir, tok, train, evaluation):
    from azml_magics.backends.local import trainer as ours
    from azml_magics.spec import merge_parameters
    from transformers import AutoModelForCausalLM

    values = merge_parameters(SETTINGS).values
    train_rows, _ = ours.tokenize_all(tok, train, SETTINGS["max_seq_length"])
    eval_rows, _ = ours.tokenize_all(tok, evaluation, SETTINGS["max_seq_length"])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out:
        t = ours.build_trainer(model, tok, train_rows, eval_rows, values, out, SETTINGS["max_seq_length"])
        t.args.save_strategy = "no"
        return _measure(t, sum(len(r["input_ids"]) for r in train_rows))


def run_plain(model_dir, tok, train, evaluation):
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
            logging_steps=s["logging_steps"], seed=s["seed"], assistant_only_loss=True,
            use_cpu=True, bf16=False, activation_checkpointing=False, save_strategy="no", report_to="none",
            disable_tqdm=True,
        )
        t = SFTTrainer(model=model, args=config, processing_class=tok,
                       train_dataset=Dataset.from_list([{"messages": m} for m in train]),
                       eval_dataset=Dataset.from_list([{"messages": m} for m in evaluation]))
        tokens = sum(len(r["input_ids"]) for r in t.train_dataset)
        return _measure(t, tokens)


def _measure(t, tokens_per_epoch: int) -> dict:
    start = time.perf_counter()
    t.train()
    seconds = time.perf_counter() - start
    tokens = tokens_per_epoch * SETTINGS["num_train_epochs"]
    return {"tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens,
            "eval_loss": t.evaluate()["eval_loss"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=480)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    SETTINGS["num_train_epochs"] = args.epochs

    import torch
    import transformers
    from transformers import AutoTokenizer

    from azml_magics.backends.local import tiny_model

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model_dir = tiny_model.ensure_tiny_model()
    tok = AutoTokenizer.from_pretrained(model_dir)
    data = ultrachat_shaped(args.rows + args.rows // 8, seed=1)
    train, evaluation = data[: args.rows], data[args.rows :]
    lengths = sorted(min(len(tok.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]),
                         SETTINGS["max_seq_length"]) for m in train)
    print(f"data: {len(train)} train / {len(evaluation)} eval conversations; tokens per row "
          f"min {lengths[0]} median {lengths[len(lengths) // 2]} p90 {lengths[len(lengths) * 9 // 10]} max {lengths[-1]}; "
          f"{torch.get_num_threads()} threads")
    best = {"ours": None, "plain": None}
    for i in range(args.repeats):
        for name, fn in (("plain", run_plain), ("ours", run_ours)):
            r = fn(model_dir, tok, train, evaluation)
            print(f"run {i + 1} {name:5s}: {r['tokens_per_s']:8.0f} tokens/s  {r['seconds']:6.2f} s  "
                  f"eval_loss {r['eval_loss']:.4f}")
            if best[name] is None or r["tokens_per_s"] > best[name]["tokens_per_s"]:
                best[name] = r
    speedup = best["ours"]["tokens_per_s"] / best["plain"]["tokens_per_s"]
    delta = abs(best["ours"]["eval_loss"] - best["plain"]["eval_loss"]) / best["plain"]["eval_loss"]
    print(f"local_train: speedup={speedup:.2f} loss_delta={delta:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
