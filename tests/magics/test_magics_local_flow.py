"""The magics over the real local backend, as a user drives them, including the mistakes a QA pass found."""

from __future__ import annotations

import os
import stat

import pytest
from IPython.core.error import UsageError

from azml_magics.data import sample_dir
from azml_magics.state import WorkspaceState
from tests.shell import run_cell


def _ok(shell, code):
    result, out, outputs = run_cell(shell, code)
    assert result.error_in_exec is None, f"{code.splitlines()[0]}: {result.error_in_exec}\n{out}"
    return result, out, outputs


def _usage_error(shell, code, expected):
    result, out, _ = run_cell(shell, code)
    err = result.error_in_exec
    assert isinstance(err, UsageError), f"{code}: {type(err).__name__}: {err}\n{out}"
    assert "\n" not in str(err) and expected in str(err), str(err)
    assert "Traceback" not in out
    return str(err)


def test_dry_run_of_a_source_writes_nothing_in_the_working_folder(ip, azml_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _ok(ip, f"%%azml_finetune --dry-run\nmodel: azml-tiny-phi3\ndata: {{source: {sample_dir()}, fraction: 0.5}}\n")
    assert not (tmp_path / "ultrachat_200k_dataset").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["azml_home"]


def test_prepare_of_one_file_gives_a_folder_finetune_takes(ip, azml_home, tmp_path):
    src = tmp_path / "my_chats.jsonl"
    src.write_text((sample_dir() / "train_sft.jsonl").read_text())
    out = tmp_path / "prepared"
    _ok(ip, f"%azml_data prepare {src} --out {out} --fraction 1.0")
    assert (out / "train_sft.jsonl").exists()
    _ok(ip, f"%%azml_finetune --dry-run\nmodel: azml-tiny-phi3\ndata: {out}\n")


def test_prepare_strict_stops_on_broken_rows_and_drop_reports_them(ip, azml_home, tmp_path):
    rows = (sample_dir() / "train_sft.jsonl").read_text().splitlines()[:30]
    rows[4] = '{"messages": [{"role": "user", "content": "only one"}]}'
    src = tmp_path / "train_sft.jsonl"
    src.write_text("\n".join(rows) + "\n")
    _usage_error(ip, f"%azml_data prepare {src} --out {tmp_path / 'a'} --fraction 1.0", "train_sft.jsonl row 5")
    _, out, outputs = _ok(ip, f"%azml_data prepare {src} --out {tmp_path / 'b'} --fraction 1.0 --policy drop")
    text = "".join(o.data.get("text/plain", "") for o in outputs)
    assert "1 rows dropped" in text
    assert len((tmp_path / "b" / "train_sft.jsonl").read_text().splitlines()) == 29


def test_summary_of_a_missing_path_says_so(ip, azml_home, tmp_path):
    _usage_error(ip, f"%azml_data summary {tmp_path / 'nope'}", "no such file or folder")


def test_latest_means_most_recently_added_again(tmp_path):
    st = WorkspaceState(tmp_path, "w")
    st.add("models", "a:1")
    st.add("models", "b:1")
    assert st.latest("models").name == "b:1"
    st.add("models", "a:1")  # registered again: it is the one the user just saw
    assert st.latest("models").name == "a:1"
    assert [r.name for r in st.list("models")] == ["a:1", "b:1"]  # listing keeps creation order


@pytest.mark.slow
def test_local_flow_through_the_magics(ip, azml_home, tiny_model_dir, tmp_path):
    d = sample_dir()
    _, out, _ = _ok(ip, f"""%%azml_finetune
model: azml-tiny-phi3
data: {{train: {d}/train_sft.jsonl, test: {d}/test_sft.jsonl}}
parameters: {{max_steps: 6, logging_steps: 2}}
""")
    assert "connected to the local backend at" in out  # the auto-connect is said, with the home
    job = ip.azml.session.state.latest("jobs").name

    _, out, outputs = _ok(ip, f"%azml_register {job}")
    _ok(ip, f"%azml_register {job} --name my-tiny")
    _usage_error(ip, f"%azml_register {job} --name my-tiny --version 7", "is already registered as my-tiny:")
    _ok(ip, f"%azml_register {job}")  # the default name again: now the latest registration

    # the cell's YAML, with the line's --endpoint winning
    _, out, outputs = _ok(ip, "%%azml_deploy --endpoint qa-flow\nmodel: last\nendpoint: from-cell\n")
    text = "".join(o.data.get("text/plain", "") for o in outputs)
    assert "qa-flow" in text and "from-cell" not in text
    assert "Billing" not in text  # nothing bills locally
    assert "engine" in text and "transformers" in text  # the local endpoint's engine (auto, no GPU here)
    state = ip.azml.session.state
    assert state.get("endpoints", "qa-flow").info["model"].startswith("azml-tiny-phi3-ultrachat-200k:")

    # a second deploy to the same name is refused, and the running endpoint's record is untouched
    before = state.get("endpoints", "qa-flow").info
    _usage_error(ip, "%azml_deploy --endpoint qa-flow", "qa-flow")
    state.reload()
    assert state.get("endpoints", "qa-flow").info == before

    reply = ip.run_cell('%azml_chat qa-flow "What is the capital of France?" --greedy --max-new-tokens 20').result
    assert isinstance(reply, str)
    # any OpenAI client works against it; the session hands one out with the key inside
    client = ip.azml.session.openai_client("qa-flow")
    completion = client.chat.completions.create(model="qa-flow", max_tokens=20, temperature=0,
                                                messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert completion.choices[0].message.content == reply
    _usage_error(ip, '%azml_chat "hello there"', "no endpoint named 'hello there'")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _usage_error(ip, f"%azml_chat qa-flow --request-file {bad}", "is not valid JSON")
    _usage_error(ip, f"%azml_chat qa-flow --request-file {tmp_path / 'missing.json'}", "request file not found")
    _usage_error(ip, "%azml_delete no-such-endpoint", "no endpoint named 'no-such-endpoint'")

    key_files = list((azml_home / "endpoints").glob("*.key"))
    assert key_files and stat.S_IMODE(os.stat(key_files[0]).st_mode) == 0o600
    key = key_files[0].read_text().strip()
    _, out, _ = _ok(ip, "%azml_delete qa-flow")
    assert "Deleted: endpoint qa-flow" in out
    _usage_error(ip, "%azml_delete qa-flow", "no endpoint named 'qa-flow'")
    saved = state.path.read_text() + "".join(p.read_text() for p in (azml_home / "jobs").rglob("*.log"))
    assert key not in saved
