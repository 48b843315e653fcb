"""prepare(): hub-shaped datasets through `datasets` (offline), local files, policies, argument errors."""

from __future__ import annotations

import json

import pytest

from azml_magics.data import SPLITS, prepare, sample_dir, summarize, validate
from azml_magics.errors import DataError

from .hub import HUB_SIZES, offline_datasets, read_jsonl, write_hub_dataset


def notebook_rows(source: str, split: str, pct: int = 5) -> list[dict]:
    """What the original notebook's code gives for the same slice."""
    import datasets

    return list(datasets.load_dataset(source, split=f"{split}[:{pct}%]"))


@pytest.mark.parametrize("with_info", [True, False], ids=["card-with-sizes-streamed", "card-without-sizes"])
def test_hub_shaped_dataset_matches_the_notebook_slice(tmp_path, monkeypatch, with_info):
    offline_datasets(monkeypatch, tmp_path / "cache")
    root = write_hub_dataset(tmp_path / "ultrachat_like", with_info=with_info)
    prepared = prepare(str(root), out=tmp_path / "out", policy="strict")
    assert set(prepared.files) == set(SPLITS)
    assert prepared.rows == {s: round(n * 5 / 100) for s, n in HUB_SIZES.items()}
    # with split sizes on the card the rows are streamed: no Arrow copy of the whole dataset is made
    arrow_files = list((tmp_path / "cache").rglob("*.arrow"))
    assert (arrow_files == []) == with_info
    for split in SPLITS:
        assert read_jsonl(prepared.files[split]) == notebook_rows(str(root), split)
    assert prepared.report.ok and prepared.report.errors == 0
    assert validate(prepared.folder).ok
    assert summarize(prepared.folder).splits == prepared.rows


def test_hub_shaped_rows_and_splits(hub_dataset, tmp_path):
    prepared = prepare(str(hub_dataset), rows=15, splits=("train_sft", "test_sft"), out=tmp_path / "o")
    assert prepared.rows == {"train_sft": 15, "test_sft": 15}
    assert [r["prompt_id"] for r in read_jsonl(prepared.files["test_sft"])][:2] == ["test_sft-000000",
                                                                                      "test_sft-000001"]


def test_unknown_split_of_a_hub_dataset(hub_dataset, tmp_path):
    with pytest.raises(DataError, match="cannot read split 'train' of"):
        prepare(str(hub_dataset), splits=("train",), out=tmp_path / "o")


def test_unreachable_hub_id_is_a_one_line_error(tmp_path, monkeypatch):
    offline_datasets(monkeypatch, tmp_path / "cache")
    with pytest.raises(DataError) as err:
        prepare("nobody-azml/no-such-dataset", out=tmp_path / "o", rows=5)
    assert "no-such-dataset" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "o" / "train_sft.jsonl").exists()


def test_local_folder_fraction_matches_datasets_rounding(tmp_path):
    import datasets

    prepared = prepare(sample_dir(), out=tmp_path / "o")
    for split in SPLITS:
        src = str(sample_dir() / f"{split}.jsonl")
        expected = datasets.load_dataset("json", data_files={split: src}, split=f"{split}[:5%]",
                                         cache_dir=str(tmp_path / "cache"))
        assert prepared.rows[split] == len(expected)
        assert read_jsonl(prepared.files[split]) == list(expected)
    # local JSON lines are copied byte for byte
    first = (sample_dir() / "train_sft.jsonl").read_bytes().splitlines(keepends=True)[:prepared.rows["train_sft"]]
    assert prepared.files["train_sft"].read_bytes() == b"".join(first)


def test_whole_sample_and_single_files_of_each_format(tmp_path):
    import pandas as pd

    whole = prepare(sample_dir(), fraction=1.0, out=tmp_path / "all")
    assert whole.rows == {"train_sft": 260, "test_sft": 52, "train_gen": 120, "test_gen": 48}
    rows = read_jsonl(sample_dir() / "train_sft.jsonl")
    pd.DataFrame(rows).to_parquet(tmp_path / "raw.parquet")
    got = prepare(tmp_path / "raw.parquet", rows=40, out=tmp_path / "pq")
    assert got.rows == {"train_sft": 40} and read_jsonl(got.files["train_sft"]) == rows[:40]
    pd.DataFrame({"prompt": [r["prompt"] for r in rows], "messages": [json.dumps(r["messages"]) for r in rows]}
                 ).to_csv(tmp_path / "raw.csv", index=False)
    got = prepare(tmp_path / "raw.csv", fraction=0.5, out=tmp_path / "csv")
    assert [r["messages"] for r in read_jsonl(got.files["train_sft"])] == [r["messages"] for r in rows[:130]]


def test_policies(tmp_path):
    good = read_jsonl(sample_dir() / "train_sft.jsonl")[:30]
    lines = [json.dumps(r) for r in good]
    lines[4] = '{"messages": [{"role": "user", "content": "hi"}]}'
    lines[9] = "{oops"
    src = tmp_path / "train_sft.jsonl"
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"2 problems in the data.*policy='drop' in Python\) to drop 2 rows and keep 28"):
        prepare(src, fraction=1.0, out=tmp_path / "strict", policy="strict")
    assert not any((tmp_path / "strict").glob("*.jsonl*"))  # nothing written, no temp files left
    dropped = prepare(src, fraction=1.0, out=tmp_path / "drop", policy="drop")
    assert dropped.rows == {"train_sft": 28} and dropped.report.dropped == 2
    kept = prepare(src, fraction=1.0, out=tmp_path / "none")
    assert kept.rows == {"train_sft": 30} and kept.report.errors == 2
    assert kept.files["train_sft"].read_bytes() == src.read_bytes()
    assert "2 errors" in str(kept)


@pytest.mark.parametrize("kwargs, message", [
    ({"fraction": 0}, "fraction must be above 0 and at most 1"),
    ({"fraction": 1.5}, "fraction must be above 0 and at most 1"),
    ({"rows": 0}, "rows must be a positive whole number"),
    ({"policy": "lenient"}, "policy must be 'strict', 'drop' or None"),
    ({"splits": ()}, "no splits asked for"),
    ({"splits": ("train_sft", "validation")}, "has no file for split(s) validation"),
])
def test_argument_errors_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepare(sample_dir(), out=tmp_path / "o", **kwargs)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_missing_local_path_and_overwriting_the_source(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare("./no/such/folder", out=tmp_path / "o")
    src = tmp_path / "train_sft.jsonl"
    src.write_bytes((sample_dir() / "train_sft.jsonl").read_bytes())
    with pytest.raises(DataError, match="would overwrite its source"):
        prepare(src, out=tmp_path)
    assert src.read_bytes() == (sample_dir() / "train_sft.jsonl").read_bytes()


def test_prepare_from_a_shared_real_file(tmp_path):
    from .test_data_validate import SYSTEM

    prepared = prepare(SYSTEM, fraction=0.5, out=tmp_path / "o", policy="strict", supports_system_role=False)
    assert prepared.rows == {"train_sft": 50}
    assert prepared.files["train_sft"].read_bytes() == b"".join(SYSTEM.read_bytes().splitlines(keepends=True)[:50])
