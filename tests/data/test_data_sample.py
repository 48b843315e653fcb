"""The bundled sample: shape, sizes, determinism, and it passes validation."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from azml_magics.data import sample_dir, validate
from azml_magics.sample_data.make_sample import SPLIT_SIZES, write_sample

from .hub import read_jsonl


def test_sample_has_the_ultrachat_schema_and_sizes():
    rows = {s: read_jsonl(sample_dir() / f"{s}.jsonl") for s in SPLIT_SIZES}
    assert len(rows["train_sft"]) >= 240 and len(rows["test_sft"]) >= 48
    assert len(rows["train_gen"]) >= 100 and len(rows["test_gen"]) >= 40
    for split_rows in rows.values():
        for r in split_rows:
            assert set(r) == {"prompt", "prompt_id", "messages"}
            assert r["prompt"] == r["messages"][0]["content"]
            assert [m["role"] for m in r["messages"]] == ["user", "assistant"] * (len(r["messages"]) // 2)
    multi = sum(len(r["messages"]) > 2 for r in rows["train_sft"])
    assert multi >= 30  # some multi-turn conversations
    short = sum(len(str(r["messages"])) < 400 for r in rows["train_sft"])
    assert short / len(rows["train_sft"]) > 0.95
    ids = [r["prompt_id"] for split_rows in rows.values() for r in split_rows]
    assert len(ids) == len(set(ids))


def test_sample_is_regenerated_byte_for_byte(tmp_path):
    write_sample(tmp_path)
    for split in SPLIT_SIZES:
        ours = hashlib.sha256((tmp_path / f"{split}.jsonl").read_bytes()).hexdigest()
        shipped = hashlib.sha256((sample_dir() / f"{split}.jsonl").read_bytes()).hexdigest()
        assert ours == shipped, f"{split}.jsonl differs from make_sample.py's output: run it again"


def test_sample_validates_clean_including_leakage():
    report = validate(sample_dir())
    assert report.ok and report.errors == 0 and report.warnings == 0
    assert {s: f.kept for s, f in report.files.items()} == SPLIT_SIZES


def test_make_sample_runs_as_a_script(tmp_path):
    out = subprocess.run([sys.executable, "-m", "azml_magics.sample_data.make_sample", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert "train_sft" in out.stdout and (tmp_path / "test_gen.jsonl").exists()
