"""Every kind of broken data row or file gives its documented message, at the right line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azml_magics.data import REASONS, validate
from azml_magics.errors import DataError

U = {"role": "user", "content": "What is 2 plus 2?"}
A = {"role": "assistant", "content": "2 plus 2 is 4."}
S = {"role": "system", "content": "Answer briefly."}


def good(i: int) -> dict:
    return {"prompt": f"q{i}", "prompt_id": f"id-{i}", "messages": [dict(U, content=f"What is {i} plus 1?"), A]}


def lines_with(bad: str | bytes, at: int = 3, n: int = 12) -> bytes:
    """n good JSON lines with ``bad`` as line ``at`` (1-based)."""
    out = [json.dumps(good(i)).encode() for i in range(n)]
    out.insert(at - 1, bad.encode() if isinstance(bad, str) else bad)
    return b"\n".join(out) + b"\n"


def row(messages, **extra) -> str:
    return json.dumps({"prompt": "p", "prompt_id": "x", "messages": messages, **extra})


# (case id, file name, bytes, validate kwargs, reason, line, message)
CASES = [
    ("bad_json_truncated", "train_sft.jsonl", lines_with('{"messages": [{"role": "user"'), {},
     "bad_json", 3, "line is not valid JSON: unexpected end of data (column 30)"),
    ("bad_json_trailing", "train_sft.jsonl", lines_with(row([U, A]) + " ,", at=5), {},
     "bad_json", 5, "line is not valid JSON: unexpected content after document (column 151)"),
    ("bad_json_single_quotes", "train_sft.jsonl", lines_with("{'messages': []}", at=7), {},
     "bad_json", 7, "line is not valid JSON: unexpected character, expected a string key (column 2)"),
    ("bad_encoding", "train_sft.jsonl", lines_with(b'{"messages": "\xff\xfe"}', at=4), {},
     "bad_encoding", 4, "line is not UTF-8 text"),
    ("not_object_string", "train_sft.jsonl", lines_with('"just text"', at=2), {},
     "not_object", 2, "row is a string, not an object"),
    ("not_object_number", "train_sft.jsonl", lines_with("42", at=6), {},
     "not_object", 6, "row is a number, not an object"),
    ("bare_messages", "train_sft.jsonl", lines_with(json.dumps([U, A]), at=3), {},
     "bare_messages", 3, "row is a bare list of messages"),
    ("json_array_multiline", "train_sft.jsonl", b"[\n" + lines_with("{}", n=3) + b"]\n", {},
     "json_array", 1, "file holds a JSON array, not JSON lines"),
    ("json_array_one_line", "train_sft.jsonl", json.dumps([good(i) for i in range(12)]).encode(), {},
     "json_array", 1, "file holds a JSON array, not JSON lines"),
    ("no_messages", "train_sft.jsonl", lines_with('{"prompt": "hi", "prompt_id": "a"}', at=8), {},
     "no_messages", 8, "row has no 'messages' field"),
    ("messages_null", "train_sft.jsonl", lines_with('{"messages": null}', at=3), {},
     "messages_not_list", 3, "'messages' is null, not a list"),
    ("messages_string", "train_sft.jsonl", lines_with('{"messages": "User: hi"}', at=4), {},
     "messages_not_list", 4, "'messages' is a string, not a list"),
    ("too_few_messages_one", "train_sft.jsonl", lines_with(row([U]), at=3), {},
     "too_few_messages", 3, "conversation has 1 message(s); at least two are needed"),
    ("too_few_messages_zero", "train_sft.jsonl", lines_with(row([]), at=9), {},
     "too_few_messages", 9, "conversation has 0 message(s); at least two are needed"),
    ("message_not_object", "train_sft.jsonl", lines_with(row([U, "hello"]), at=3), {},
     "message_not_object", 3, "message 2 is a string, not an object"),
    ("missing_role", "train_sft.jsonl", lines_with(row([{"content": "hi"}, A]), at=3), {},
     "missing_role", 3, "message 1 has no 'role'"),
    ("unknown_role", "train_sft.jsonl", lines_with(row([dict(U, role="human"), A]), at=5), {},
     "unknown_role", 5, "message 1 has role 'human'; expected user, assistant or system"),
    ("role_null", "train_sft.jsonl", lines_with(row([U, dict(A, role=None)]), at=3), {},
     "unknown_role", 3, "message 2 has role null; expected user, assistant or system"),
    ("missing_content", "train_sft.jsonl", lines_with(row([U, {"role": "assistant"}]), at=3), {},
     "missing_content", 3, "message 2 has no 'content'"),
    ("content_null", "train_sft.jsonl", lines_with(row([dict(U, content=None), A]), at=10), {},
     "content_not_string", 10, "message 1 content is null, not a string"),
    ("content_list", "train_sft.jsonl", lines_with(row([U, dict(A, content=["a", "b"])]), at=3), {},
     "content_not_string", 3, "message 2 content is a list, not a string"),
    ("empty_content", "train_sft.jsonl", lines_with(row([U, dict(A, content="  \n")]), at=3), {},
     "empty_content", 3, "message 2 (assistant) has empty content"),
    ("multiple_system", "train_sft.jsonl", lines_with(row([S, U, A, S, U, A]), at=3), {},
     "multiple_system", 3, "2 system messages; at most one is allowed"),
    ("system_not_first", "train_sft.jsonl", lines_with(row([U, S, A]), at=4), {},
     "system_not_first", 4, "system message at position 2; it must be the first message"),
    ("system_without_user", "train_sft.jsonl", lines_with(row([S, A, U, A]), at=3),
     {"supports_system_role": False}, "system_without_user", 3, "system message is not followed by a user message"),
    ("no_user", "train_sft.jsonl", lines_with(row([S, A]), at=3), {},
     "no_user", 3, "conversation has no user message"),
    ("no_assistant", "train_sft.jsonl", lines_with(row([U, dict(U, content="And 3?")]), at=3), {},
     "no_assistant", 3, "conversation has no assistant message"),
    ("last_not_assistant", "train_sft.jsonl", lines_with(row([U, A, U]), at=11), {},
     "last_not_assistant", 11, "conversation ends with a user message, not the assistant"),
    ("tools_not_list", "train_sft.jsonl", lines_with(row([U, A], tools="search"), at=3), {},
     "tools_not_list", 3, "'tools' is a string, not a list"),
    ("too_few_train_rows", "train_sft.jsonl", b"\n".join(json.dumps(good(i)).encode() for i in range(9)), {},
     "too_few_train_rows", 0, "only 9 usable training rows; at least 10 are needed"),
    ("no_rows_blank_file", "train_sft.jsonl", b"\n\n", {}, "no_rows", 0, "file has no usable rows"),
    ("unsupported_format", "train_sft.txt", b"hello", {}, "unsupported_format", 0, "unsupported file type '.txt'"),
    ("bad_json_file", "train_sft.json", b'[{"messages": []},', {},
     "bad_json_file", 0, "file is not valid JSON: unexpected end of data (column 19)"),
    ("csv_no_messages", "train_sft.csv", b"prompt,answer\nhi,hello\n", {},
     "csv_no_messages", 0, "CSV file has no 'messages' column (columns: prompt, answer)"),
    ("csv_bad_messages", "train_sft.csv",
     b"prompt,messages\n" + b"".join(b'q,"' + json.dumps([U, A]).replace('"', '""').encode() + b'"\n'
                                     for _ in range(11)) + b"q,not json\n", {},
     "csv_bad_messages", 13, "'messages' cell is not a JSON list: invalid literal, expected 'null'"),
    ("csv_not_utf8", "train_sft.csv",
     b"prompt,messages\n" + b'q,"' + json.dumps([U, A]).replace('"', '""').encode() + b'"\n'
     + b"\xff\xfe,[]\n", {}, "file_not_utf8", 0, "file is not UTF-8 text (first bad byte on this line)"),
    ("bad_parquet", "train_sft.parquet", b"PAR1 this is not parquet", {},
     "bad_parquet", 0, None),
]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_kind_gives_documented_message_at_its_line(tmp_path, case):
    _, name, data, kwargs, reason, line, message = case
    report = validate(_write(tmp_path, name, data), **kwargs)
    found = [p for p in report.problems if p.reason == reason]
    assert found, f"expected {reason}, got {[str(p) for p in report.problems]}"
    problem = found[0]
    assert problem.line == line
    if message is not None:
        assert problem.message == message
    # the message follows the documented template
    assert problem.message == REASONS[reason].message.format(**problem.fields)
    assert not report.ok
    with pytest.raises(DataError) as err:
        report.raise_for_problems()
    assert "\n" not in str(err.value)


def test_at_least_25_kinds_are_covered():
    assert len({c[4] for c in CASES}) >= 25


def test_missing_file(tmp_path):
    report = validate(tmp_path / "nope.jsonl")
    assert [(p.reason, p.line) for p in report.problems] == [("file_missing", 0)]
    with pytest.raises(DataError, match=r"nope.jsonl: file not found\. Check the path\."):
        report.raise_for_problems()


def test_missing_train_split(tmp_path):
    test = _write(tmp_path, "test_sft.jsonl", lines_with(row([U, A])))
    report = validate({"test_sft": test})
    assert report.counts == {"no_train_split": 1}
    assert report.problems[0].message == "no 'train_sft' file among the data files (test_sft)"


def test_leak_between_train_and_test_reports_both_lines(tmp_path):
    train = _write(tmp_path, "train_sft.jsonl", lines_with(row([U, A]), at=1))
    test_rows = [good(100 + i) for i in range(4)] + [good(5)]
    test = _write(tmp_path, "test_sft.jsonl", b"\n".join(json.dumps(r).encode() for r in test_rows))
    report = validate({"train_sft": train, "test_sft": test})
    leaks = [p for p in report.problems if p.reason == "leak"]
    assert [(Path(p.file).name, p.line) for p in leaks] == [("test_sft.jsonl", 5)]
    # good(5) is line 7 of the training file (a bad row was inserted at line 1, then good(0)...)
    assert leaks[0].message == "prompt 'id-5' is also in the training data (train_sft.jsonl:7)"


def test_leak_without_prompt_id_uses_first_user_message(tmp_path):
    train = _write(tmp_path, "train.jsonl", b"\n".join(
        json.dumps({"messages": [dict(U, content=f"q{i}"), A]}).encode() for i in range(10)))
    test = _write(tmp_path, "test.jsonl", b"\n".join(
        json.dumps({"messages": [dict(U, content=q), A]}).encode() for q in ("q3", "new")))
    report = validate({"train": train, "test": test}, train_split="train", test_split="test")
    assert [(p.reason, p.line) for p in report.problems] == [("leak", 1)]


def test_multiple_problems_in_one_row_are_all_reported(tmp_path):
    bad = row([{"role": "bot", "content": ""}, {"role": "user", "content": 3}])
    report = validate(_write(tmp_path, "train_sft.jsonl", lines_with(bad, at=2)))
    assert sorted(p.reason for p in report.problems if p.line == 2) == [
        "content_not_string", "empty_content", "no_assistant", "unknown_role"]
    assert report.files["train_sft"].bad_lines == {2}


def test_blank_lines_and_bom_are_not_problems(tmp_path):
    data = b"\xef\xbb\xbf" + lines_with(b"", at=4) + b"\n\n"
    report = validate(_write(tmp_path, "train_sft.jsonl", data))
    assert report.ok and not report.problems
    assert report.files["train_sft"].rows == 12


def test_problems_past_the_first_thousand_keep_exact_counts(tmp_path):
    data = b"\n".join([json.dumps(good(i)).encode() for i in range(20)] + [b"{}"] * 12_000)
    report = validate(_write(tmp_path, "train_sft.jsonl", data), policy="drop")
    assert report.counts == {"no_messages": 12_000}
    assert len(report.examples["no_messages"]) == 3
    assert report.examples["no_messages"][0].line == 21
    assert report.ok and report.files["train_sft"].kept == 20
