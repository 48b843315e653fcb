"""Benchmark: the notebook's way of taking 5% of a split against ours (streamed, validated).

Generates a 200,000-row ultrachat-shaped JSON-lines file (about 400 MB), then times, each in a fresh
child process so peak memory is measured per side:
  (a) the notebook: datasets.load_dataset("json", ..., split="train_sft[0%:5%]") then .to_json(...)
  (b) ours: azml_magics.data.prepare(file, fraction=0.05, policy="drop") - the first 5%, every row
      validated, written
and validating all 200,000 rows with azml_magics.data.validate.
Last line: data_prep: speedup=<a/b wall> rss_ratio=<b/a peak RSS> validate_rows_per_s=<n>
Targets: speedup >= 5, rss_ratio <= 0.5, validate_rows_per_s >= 50000.

Run: python benchmarks/data_prep.py [--rows 200000] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the a of to and in is for on with that as it be by this are from or an at which can you your "
         "data model learning system energy water city history music science people time world health "
         "market design language travel garden recipe planet ocean mountain river forest climate policy "
         "economy culture education network software hardware story character process method result").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def text(rng: random.Random, chars: int) -> str:
    out, size = [], 0
    while size < chars:
        s = sentence(rng, rng.randint(6, 18))
        out.append(s)
        size += len(s) + 1
    return " ".join(out)


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Rows shaped like ultrachat_200k (prompt, prompt_id, 2-8 alternating messages), ~2 KB each."""
    rng = random.Random(seed)
    # a pool of texts keeps generation fast; rows still differ in prompt, turns and order
    pool = [text(rng, rng.randint(80, 420)) for _ in range(4000)]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            prompt = f"{i}: {rng.choice(pool)}"
            messages = [{"content": prompt, "role": "user"}]
            for t in range(rng.choice((1, 2, 2, 3, 3, 4))):
                if t:
                    messages.append({"content": rng.choice(pool), "role": "user"})
                reply = rng.choice(pool) if rng.random() < 0.6 else rng.choice(pool) + " " + rng.choice(pool)
                messages.append({"content": reply, "role": "assistant"})
            pid = hashlib.sha256(prompt.encode()).hexdigest()
            fh.write(json.dumps({"prompt": prompt, "prompt_id": pid, "messages": messages}) + "\n")


NOTEBOOK = """
import json, resource, sys, time
t = time.perf_counter()
from datasets import load_dataset
ds = load_dataset("json", data_files={{"train_sft": {src!r}}}, split="train_sft[0%:5%]", cache_dir={cache!r})
ds.to_json({out!r})
print(json.dumps({{"rows": len(ds), "inner_s": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

OURS = """
import json, resource, sys, time
t = time.perf_counter()
from azml_magics.data import prepare
p = prepare({src!r}, fraction=0.05, splits=("train_sft",), out={out!r}, policy="drop")
print(json.dumps({{"rows": p.rows["train_sft"], "inner_s": time.perf_counter() - t,
                  "dropped": p.report.dropped, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

VALIDATE_ALL = """
import json, resource, time
from azml_magics.data import validate
t = time.perf_counter()
r = validate({src!r})
s = time.perf_counter() - t
f = r.files["train_sft"]
print(json.dumps({{"rows": f.rows, "kept": f.kept, "seconds": s, "ok": r.ok,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child(code: str) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                               "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"})
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="azml-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "train_sft.jsonl"
    try:
        t = time.perf_counter()
        if not src.exists() or sum(1 for _ in open(src, "rb")) != args.rows:
            generate(src, args.rows)
        print(f"input: {src} {args.rows} rows, {src.stat().st_size / 1e6:.0f} MB "
              f"(generated/checked in {time.perf_counter() - t:.1f}s)")
        cache = work / "hf-cache"
        shutil.rmtree(cache, ignore_errors=True)
        a, a_wall = child(NOTEBOOK.format(src=str(src), cache=str(cache), out=str(work / "a" / "train_sft.jsonl")))
        print(f"(a) notebook: {a['rows']} rows, wall {a_wall:.2f}s, peak RSS {a['rss_mb']:.0f} MB")
        b, b_wall = child(OURS.format(src=str(src), out=str(work / "b")))
        print(f"(b) ours:     {b['rows']} rows ({b['dropped']} dropped), wall {b_wall:.2f}s, "
              f"peak RSS {b['rss_mb']:.0f} MB")
        if a["rows"] != b["rows"]:
            sys.exit(f"row counts differ: notebook {a['rows']}, ours {b['rows']}")
        v, _ = child(VALIDATE_ALL.format(src=str(src)))
        rate = v["rows"] / v["seconds"]
        print(f"validate all: {v['rows']} rows in {v['seconds']:.2f}s, ok={v['ok']}, peak RSS {v['rss_mb']:.0f} MB")
        print(f"data_prep: speedup={a_wall / b_wall:.1f} rss_ratio={b['rss_mb'] / a['rss_mb']:.2f} "
              f"validate_rows_per_s={rate:.0f}")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
