"""The training benchmark still runs end to end (a few rows, one pair) and prints its last line.

Not a timing test: the numbers are the benchmark's business. This catches a script that no longer
runs against the package (it once passed its own option to merge_parameters and died in round 1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.paths import REPO as ROOT


def test_local_train_benchmark_runs_and_prints_its_summary_line(tiny_model_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "local_train.py"), "--rows", "24",
                           "--epochs", "1", "--pairs", "1"], capture_output=True, text=True, timeout=600,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"local_train: speedup=\d+\.\d\d loss_delta=\S+ mfu=\d+\.\d\d baseline=(plain|padding_free)",
                        last), done.stdout[-2000:]


def test_gpu_serve_benchmark_builds_its_commands_without_a_gpu():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_serve.py"), "--check"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "gpu_serve: check=ok"
    assert any(line.startswith("vllm: ") and " serve " in line and "--gpu-memory-utilization 0.4" in line for line in lines)
    assert any(line.startswith("ours: --engine vllm --gpu-memory-share 0.4") for line in lines)
