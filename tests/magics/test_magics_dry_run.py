"""--dry-run through the real local backend: the effective table with sources, then nothing else."""

from __future__ import annotations

from IPython.core.error import UsageError

from azml_magics.data import sample_dir
from tests.shell import run_cell


def _spec(extra: str = "") -> str:
    d = sample_dir()
    return (f"%%azml_finetune --dry-run\nmodel: azml-tiny-phi3\n"
            f"data: {{train: {d}/train_sft.jsonl, test: {d}/test_sft.jsonl}}\n{extra}")


def _text(outputs) -> str:
    return "".join(o.data.get("text/plain", "") for o in outputs)


def test_dry_run_shows_every_effective_parameter_with_its_source(ip, azml_home):
    result, _, outputs = run_cell(ip, _spec("parameters: {num_train_epochs: 3, learning_rate: 0.002}\n"))
    assert result.error_in_exec is None, result.error_in_exec
    text = _text(outputs)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "your spec" in lines["num_train_epochs"] and " 3 " in lines["num_train_epochs"]
    assert "your spec" in lines["learning_rate"] and "0.002" in lines["learning_rate"]
    assert "component default" in lines["adam_beta1"]
    assert "model default" in text  # the tiny model's CPU defaults
    assert "no meaning on this backend (ignored):" in text and "apply_ort" in text
    assert "data checked: train_sft: 260 rows, test_sft: 52 rows" in text
    # the estimate: 208 rows (80% of train; test is held out), 3 epochs of batch 8 = 3 x 26 steps
    assert "estimate: 208 training rows" in text and "3 epoch(s), 78 optimizer steps on 1 process(es)" in text
    assert "estimate: peak memory per device" in text and "estimate: time" in text and "tokens/s" in text
    # a dry run submits nothing and writes no data of ours
    assert not any((azml_home / "jobs").iterdir())
    assert not (azml_home / "data").exists()
    assert ip.azml.session.state.is_empty()


def test_dry_run_html_escapes_values(ip, azml_home):
    # a job name can no longer hold markup (it names a folder); a free string parameter still can
    result, _, outputs = run_cell(ip, _spec("parameters: {shm_size_finetune: '<b>x</b>'}\n"))
    assert result.error_in_exec is None
    html = "".join(o.data.get("text/html", "") for o in outputs)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html


def test_broken_data_stops_the_dry_run_with_file_and_line(ip, azml_home, tmp_path):
    bad = tmp_path / "train.jsonl"
    good = (sample_dir() / "train_sft.jsonl").read_text().splitlines()[:20]
    good[6] = '{"messages": [{"role": "user", "content": "hi"}]}'
    bad.write_text("\n".join(good) + "\n")
    result, _, _ = run_cell(ip, f"%%azml_finetune --dry-run\nmodel: azml-tiny-phi3\ndata: {{train: {bad}}}\n")
    err = result.error_in_exec
    assert isinstance(err, UsageError)
    assert "train.jsonl:7" in str(err) and "\n" not in str(err)
    assert not any((azml_home / "jobs").iterdir())
