"""%azml_data in a real IPython shell: prepare, validate and summary on the bundled sample."""

from __future__ import annotations

import json

from azml_magics.data import sample_dir

from tests.shell import run_cell


def test_prepare_validate_summary_from_the_magic(ip, tmp_path):
    out = tmp_path / "prepared"
    result, text, outputs = run_cell(ip, f"%azml_data prepare {sample_dir()} --rows 40 --out {out}")
    assert result.success, text
    assert [len((out / f"{s}.jsonl").read_text().splitlines()) for s in ("train_sft", "test_sft")] == [40, 40]
    result, text, outputs = run_cell(ip, f"%azml_data validate {out}")
    assert result.success, text
    assert any("Data validation (strict): OK" in o.data.get("text/plain", "") for o in outputs)
    result, text, outputs = run_cell(ip, f"%azml_data summary {out}")
    assert result.success, text
    assert any("image/png" in o.data or "data:image/png" in o.data.get("text/html", "") for o in outputs)


def test_validate_magic_reports_a_broken_line_in_one_line(ip, tmp_path):
    rows = (sample_dir() / "train_sft.jsonl").read_text().splitlines()[:20]
    rows[6] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    (tmp_path / "train_sft.jsonl").write_text("\n".join(rows) + "\n")
    result, text, outputs = run_cell(ip, f"%azml_data validate {tmp_path / 'train_sft.jsonl'}")
    assert not result.success
    err = str(result.error_in_exec)
    assert "train_sft.jsonl:7: conversation has 1 message(s)" in err and "\n" not in err


def test_summary_with_a_model_counts_tokens_against_max_seq_length(ip, tmp_path, tiny_model_dir):
    result, text, _ = run_cell(ip, f"%azml_connect --backend local --home {tmp_path / 'home'}")
    assert result.success, text
    result, text, outputs = run_cell(
        ip, f"%azml_data summary {sample_dir() / 'train_sft.jsonl'} --model azml-tiny-phi3 --max-seq-length 64")
    assert result.success, text
    plain = "\n".join(o.data.get("text/plain", "") for o in outputs)
    assert "rows are longer than 64 tokens and would be cut" in plain
    assert "tokens per conversation" in plain


def test_prepare_from_the_hub_shows_our_wait_lines_and_no_hugging_face_bars(ip, tmp_path, monkeypatch):
    """A card without split sizes is read the notebook's way (`datasets` builds Arrow and, left alone,
    draws "Generating train_sft split: 100%|..." bars); in the cell only our wait lines show."""
    from azml_magics import waits

    from .hub import offline_datasets, write_hub_dataset

    offline_datasets(monkeypatch, tmp_path / "cache")
    root = write_hub_dataset(tmp_path / "ultrachat_like", with_info=False)
    monkeypatch.setattr(waits, "SHOW_AFTER", 0.0)
    result, text, _ = run_cell(ip, f"%azml_data prepare {root} --out {tmp_path / 'out'}")
    assert result.success, text
    assert "examples/s" not in text and "Generating" not in text and "%|" not in text, text
    ended = [line.split("\r")[-1] for line in text.split("\n") if line.strip()]
    assert any(line.startswith(f"Opening {root}:train_sft: done in") for line in ended), ended
    assert any(line.startswith(f"Preparing train_sft from {root}:train_sft: done in") for line in ended), ended
