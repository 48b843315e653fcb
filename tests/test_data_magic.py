"""%azml_data in a real IPython shell: prepare, validate and summary on the bundled sample."""

from __future__ import annotations

import json

from azml_magics.data import sample_dir

from .fixtures_core import run_cell


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
