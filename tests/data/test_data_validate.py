"""Validation on real files, with the tiny model's tokenizer, policies, clean output and the report."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from azml_magics.data import REASONS, fold_system, sample_dir, validate
from azml_magics.errors import DataError

from .hub import read_jsonl
from tests.paths import REPO, SHARED

SHARED = SHARED / "data" / "azureml-examples"
if not SHARED.exists():
    SHARED = Path("/work/shared/data/azureml-examples")
TRAIN, VALID, SYSTEM = (SHARED / f for f in (
    "chat-completion-train.jsonl", "chat-completion-validation.jsonl", "conversation-with-system-train.jsonl"))

GOOD = {"messages": [{"role": "user", "content": "What is 1 plus 1?"}, {"role": "assistant", "content": "2."}]}


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_real_azureml_example_files_validate():
    report = validate({"train_sft": TRAIN, "test_sft": VALID})
    assert report.ok and not report.problems
    assert report.files["train_sft"].kept == len(read_jsonl(TRAIN))
    assert report.files["test_sft"].kept == len(read_jsonl(VALID))


@pytest.mark.parametrize("supports", [True, False])
def test_real_file_with_system_messages_validates_either_way(supports):
    report = validate(SYSTEM, supports_system_role=supports)
    assert report.ok and report.files["train_sft"].kept == len(read_jsonl(SYSTEM))


def test_real_files_with_the_tiny_model_tokenizer(tiny_tokenizer):
    report = validate({"train_sft": TRAIN, "test_sft": VALID}, tokenizer=tiny_tokenizer, max_seq_length=2048)
    assert report.checked_tokens and report.ok and report.errors == 0


def test_system_file_with_tokenizer_and_short_limit_reports_truncation(tiny_tokenizer):
    report = validate(SYSTEM, tokenizer=tiny_tokenizer, max_seq_length=256, policy="drop")
    trunc = report.examples["assistant_truncated"][0]
    assert trunc.message.startswith("no assistant tokens within max_seq_length 256 (the prompt alone is ")
    assert report.counts["too_long"] >= report.counts["assistant_truncated"] > 0
    kept = report.files["train_sft"].kept
    assert kept == report.files["train_sft"].rows - report.counts["assistant_truncated"]


def test_system_role_detected_from_the_template(tiny_tokenizer, tmp_path):
    from azml_magics.data.tokens import supports_system

    assert supports_system(tiny_tokenizer) is True
    no_system = type(tiny_tokenizer).from_pretrained(tiny_tokenizer.name_or_path)
    no_system.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}")
    assert supports_system(no_system) is False
    # with no system role, the system text is folded into the first user message and the template passes
    report = validate(SYSTEM, tokenizer=no_system, supports_system_role=None)
    assert report.ok and report.errors == 0
    # told the model supports it when it does not: every row fails the template, at its line
    bad = validate(SYSTEM, tokenizer=no_system, supports_system_role=True)
    assert bad.counts["template_error"] == 100
    assert bad.examples["template_error"][0].message == "the chat template fails: System role not supported"
    assert bad.examples["template_error"][1].line == 2


def test_too_long_is_a_warning(tiny_tokenizer, tmp_path):
    rows = [GOOD] * 11 + [{"messages": [{"role": "user", "content": "hi"},
                                        {"role": "assistant", "content": "ok " * 50}]}]
    path = write_rows(tmp_path / "train_sft.jsonl", rows)
    report = validate(path, tokenizer=tiny_tokenizer, max_seq_length=40)
    assert [(p.reason, p.line) for p in report.problems] == [("too_long", 12)]
    assert report.ok  # a warning does not stop anything


def test_fold_system():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}]
    assert fold_system(msgs) == [{"role": "user", "content": "Be brief.\nHi"}, msgs[2]]
    assert fold_system(msgs[1:]) == msgs[1:]


def test_strict_raises_one_line_with_count_commonest_reason_and_drop_hint(tmp_path):
    rows = [GOOD] * 20 + [{"messages": [GOOD["messages"][0]]}] * 3 + ["{bad"]
    report = validate(write_rows(tmp_path / "train_sft.jsonl", rows))
    assert not report.ok and report.errors == 4 and report.dropped == 4
    with pytest.raises(DataError) as err:
        report.raise_for_problems()
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("4 problems in the data; commonest: 3 rows with fewer than two messages, "
                           "first at train_sft.jsonl:21: conversation has 1 message(s)")
    assert text.endswith("policy='drop' in Python) to drop 4 rows and keep 20.")
    assert "--policy drop" in text


def test_drop_policy_writes_clean_files_with_fingerprint(tmp_path):
    rows = [GOOD] * 12 + ["not json", {"messages": []}]
    src = write_rows(tmp_path / "train_sft.jsonl", rows)
    test = write_rows(tmp_path / "test_sft.jsonl", [GOOD | {"prompt_id": "t1"}] + ["[1]"])
    report = validate({"train_sft": src, "test_sft": test}, policy="drop")
    assert report.ok and report.errors == 3
    report.raise_for_problems()  # usable after dropping: no error
    files = report.write_clean(tmp_path / "clean")
    assert files.rows == {"train_sft": 12, "test_sft": 1}
    assert Path(files.train).name == "train_sft.jsonl" and Path(files.test).name == "test_sft.jsonl"
    written = Path(files.train).read_bytes() + Path(files.test).read_bytes()
    assert files.fingerprint == hashlib.sha256(written).hexdigest()
    assert validate(Path(files.train).parent).ok
    # the same input gives the same fingerprint; a different row changes it
    assert report.write_clean(tmp_path / "clean2").fingerprint == files.fingerprint


def test_strict_write_clean_refuses_bad_data_and_never_overwrites_input(tmp_path):
    src = write_rows(tmp_path / "train_sft.jsonl", [GOOD] * 12 + ["nope"])
    with pytest.raises(DataError):
        validate(src).write_clean(tmp_path / "out")
    assert not (tmp_path / "out" / "train_sft.jsonl").exists()
    with pytest.raises(DataError, match="overwrite its input"):
        validate(src, policy="drop").write_clean(tmp_path)


def test_write_clean_folds_system_for_models_without_a_system_role(tmp_path):
    files = validate(SYSTEM, supports_system_role=False).write_clean(tmp_path, fold_system=True)
    rows = read_jsonl(files.train)
    assert all(r["messages"][0]["role"] == "user" for r in rows)
    assert rows[0]["messages"][0]["content"].startswith("The following is a conversation")


def test_csv_json_and_parquet_sources_validate_with_row_numbers(tmp_path):
    import pandas as pd

    rows = [GOOD] * 11 + [{"messages": [GOOD["messages"][0]]}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.json").write_text(json.dumps({"data": rows}))
    pd.DataFrame(rows).to_parquet(tmp_path / "c.parquet")
    frame = pd.DataFrame({"messages": [json.dumps(r["messages"]) for r in rows]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    for name, where in [("a.json", "a.json row 12"), ("b.json", "b.json row 12"),
                        ("c.parquet", "c.parquet row 12"), ("d.csv", "d.csv:13")]:
        report = validate(tmp_path / name, policy="drop")
        assert [str(p) for p in report.problems] == [
            f"{where}: conversation has 1 message(s); at least two are needed"], name
        assert report.files["train_sft"].kept == 11


def test_report_text_and_html(tmp_path):
    src = write_rows(tmp_path / "train_sft.jsonl", [GOOD] * 12 + ['{"messages": 5}', "<b>"])
    report = validate(src, policy="drop")
    text = str(report)
    assert "usable after dropping rows" in text and "2 errors" in text
    assert "train_sft.jsonl:13: 'messages' is a number, not a list" in text
    page = report._repr_html_()
    assert "<b>" not in page.replace("<b style", "").split("</b>", 1)[1]  # user text is escaped
    assert "&lt;b&gt;" in page or "line is not valid JSON" in page


def test_bad_policy_and_empty_folder_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="policy must be 'strict' or 'drop'"):
        validate(sample_dir(), policy="lenient")
    with pytest.raises(DataError, match="no .jsonl, .json, .csv or .parquet files in folder"):
        validate(tmp_path)


def test_readme_documents_every_reason():
    readme = (REPO / "azml_magics" / "data" / "README.md").read_text()
    for code, reason in REASONS.items():
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| `{code}` |")), None)
        assert line, f"{code} missing from azml_magics/data/README.md"
        assert reason.message.replace("|", "\\|") in line, code


def test_importing_the_data_package_is_light():
    code = ("import sys, azml_magics.data\n"
            "heavy = {'datasets', 'pandas', 'matplotlib', 'transformers', 'torch', 'pyarrow', 'mlflow'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
