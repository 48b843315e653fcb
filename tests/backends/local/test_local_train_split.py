"""The local trainer's train/eval split is Azure's: the preprocess step's `datasets` percent slices of the
train file, in file order (Azure/azureml-assets, src/preprocess/preprocess.py), checked here against
`datasets` itself slicing the same file."""

from __future__ import annotations

import json

import pytest

from azml_magics.backends.base import DataFiles
from azml_magics.backends.local import train_data


def _write(path, n, tag):
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"{tag} question {i}"},
                                              {"role": "assistant", "content": f"{tag} answer {i}"}]}) + "\n")
    return str(path)


def _datasets_slice(path, spec):
    import datasets

    rows = datasets.load_dataset("json", data_files={"train": path}, split=spec)
    return [[{"role": m["role"], "content": m["content"]} for m in r["messages"]] for r in rows]


@pytest.mark.parametrize("n", [52, 37, 100])
def test_the_split_is_azures_datasets_slices_in_file_order(tmp_path, monkeypatch, n):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    train = _write(tmp_path / "train.jsonl", n, "train")
    test = _write(tmp_path / "test.jsonl", 12, "test")
    validation = _write(tmp_path / "validation.jsonl", 9, "validation")

    # train + test (the notebook's case): validation is train[80%:100%]
    tr, ev = train_data.split_data(DataFiles(train=train, test=test))
    assert tr == _datasets_slice(train, "train[:80%]") and ev == _datasets_slice(train, "train[80%:100%]")
    # train only: validation is train[80%:90%] (the last 10% is Azure's test slice)
    tr, ev = train_data.split_data(DataFiles(train=train))
    assert tr == _datasets_slice(train, "train[:80%]") and ev == _datasets_slice(train, "train[80%:90%]")
    # train + validation: Azure keeps train[-20%:] as test and trains on train[:80%]
    tr, ev = train_data.split_data(DataFiles(train=train, validation=validation))
    assert tr == _datasets_slice(train, "train[:80%]") and len(ev) == 9
    # all three: every file whole
    tr, ev = train_data.split_data(DataFiles(train=train, test=test, validation=validation))
    assert len(tr) == n and len(ev) == 9


def test_the_job_view_names_the_split_it_used(tmp_path):
    train, test = _write(tmp_path / "t.jsonl", 20, "t"), _write(tmp_path / "s.jsonl", 5, "s")
    assert train_data.eval_split_name(DataFiles(train=train, test=test)).startswith(
        "the last 20% of train, in file order (Azure's train[80%:100%]")
    assert train_data.eval_split_name(DataFiles(train=train)).startswith("rows 80%-90% of train, in file order")
    assert train_data.eval_split_name(DataFiles(train=train, test=test, validation=test)) == "the validation file"
