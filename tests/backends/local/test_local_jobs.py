"""Local jobs end to end on the tiny model: real training in a child process, real MLflow store.

Covers: a job completes and the loss falls; metrics and logs read back; status steps; SIGKILL ->
Failed with the log kept and no zombie; cancel -> Canceled; a crash -> Failed with the error; a
fresh process lists the jobs and re-attaches by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from azml_magics.errors import AzmlError, NotFound
from tests.backends.local.tiny_jobs import submit_tiny, wait_done


def wait_for(predicate, timeout=120, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_completed_job_trains_and_reports(trained_job):
    backend, job = trained_job
    status = backend.status(job)
    assert status.state == "Completed" and status.error is None and status.progress == 1.0
    assert [s.name for s in status.steps] == ["validate data", "load model", "preprocess", "fine-tune", "save MLflow model"]
    assert all(s.state == "Completed" and s.started and s.ended >= s.started for s in status.steps)
    metrics = backend.metrics(job)
    for key in ("loss", "eval_loss", "learning_rate", "tokens_per_second", "epoch"):
        assert metrics.get(key), key
    loss = [p.value for p in metrics["loss"]]
    assert loss[-1] < loss[0] * 0.8, loss  # it learns
    assert all(p.value > 0 for p in metrics["tokens_per_second"])
    steps = [p.step for p in metrics["loss"]]
    assert steps == sorted(steps)


@pytest.mark.slow
def test_logs_page_with_a_cursor(trained_job):
    backend, job = trained_job
    first = backend.logs(job)
    assert any("completed" in line for line in first.lines)
    assert any("ignored locally: apply_ort" in line for line in first.lines)
    assert backend.logs(job, first.cursor).lines == []


@pytest.mark.slow
def test_log_has_one_line_per_event_and_status_counts_steps(trained_job):
    backend, job = trained_job
    lines = backend.logs(job).lines
    logged = [line for line in lines if "'loss':" in line or '"loss":' in line]
    assert logged and all(line.startswith("[") and '"loss":' in line for line in logged), logged  # no dict twin
    assert not [line for line in lines if "%|" in line or "\r" in line], "progress-bar noise in train.log"
    status = backend.status(job)
    assert status.train_steps and status.train_step == status.train_steps
    data = backend.logs(job).lines
    assert status.eval_split == ("the last 20% of train, in file order "
                                 "(Azure's train[80%:100%] when no validation file is given)")
    assert any("eval: the last 20% of train" in line for line in data)


@pytest.mark.slow
def test_job_folder_layout(trained_job):
    backend, job = trained_job
    folder = backend.home / "jobs" / job
    spec = json.loads((folder / "job.json").read_text())
    assert spec["model"]["kind"] == "tiny" and spec["parameters"]["learning_rate"] > 0
    status = json.loads((folder / "status.json").read_text())
    assert status["pid"] and status["cmdline"][-1] == str(folder)
    assert (folder / "train.log").stat().st_size > 0
    assert (folder / "output" / "hf_model" / "config.json").exists()


@pytest.mark.slow
def test_output_is_an_mlflow_model_with_a_plain_hf_folder(trained_job):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from azml_magics.backends.local import registry

    backend, job = trained_job
    outputs = backend.status(job).outputs
    folder = registry.hf_model_dir(outputs["model_uri"], home=backend.home)
    assert (folder.parent.parent / "MLmodel").exists()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.slow
def test_fresh_process_lists_and_reattaches(trained_job):
    backend, job = trained_job
    code = (
        "import json, sys\n"
        "from azml_magics.backends.local import LocalBackend\n"
        "b = LocalBackend(); b.connect({'home': sys.argv[1]})\n"
        "print(json.dumps({'jobs': [j.name for j in b.list_jobs()], 'state': b.status(sys.argv[2]).state,"
        " 'loss': len(b.metrics(sys.argv[2])['loss'])}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(backend.home), job], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["jobs"] == [job] and got["state"] == "Completed" and got["loss"] > 2


def test_unknown_job_is_one_line(local_backend):
    with pytest.raises(NotFound, match="no local job named 'nope'"):
        local_backend.status("nope")


@pytest.mark.slow
def test_duplicate_job_name_is_refused(local_backend, sample_data_files):
    submit_tiny(local_backend, sample_data_files, name="same-name", max_steps=1)
    with pytest.raises(AzmlError, match="exists already"):
        submit_tiny(local_backend, sample_data_files, name="same-name", max_steps=1)
    wait_done(local_backend, "same-name", timeout=120)


def _running_job(backend, data):
    ref = submit_tiny(backend, data, max_steps=100000, logging_steps=50, evaluation_strategy="disable")
    folder = backend.home / "jobs" / ref.name
    wait_for(lambda: backend.status(ref.name).progress, timeout=120, what="training to start")
    pid = json.loads((folder / "status.json").read_text())["pid"]
    assert psutil.Process(pid).is_running()
    return ref.name, pid


@pytest.mark.slow
def test_sigkill_gives_failed_with_log_and_no_zombie(local_backend, sample_data_files):
    job, pid = _running_job(local_backend, sample_data_files)
    os.kill(pid, signal.SIGKILL)
    status = wait_for(lambda: (s := local_backend.status(job)).done and s, timeout=30, what="Failed")
    assert status.state == "Failed"
    assert f"pid {pid}" in status.error and "killed by signal 9" in status.error
    assert [s.state for s in status.steps if s.name == "fine-tune"] == ["Failed"]
    assert local_backend.logs(job).lines  # the log is kept
    wait_for(lambda: not psutil.pid_exists(pid), timeout=10, what="the child to be reaped (no zombie)")


@pytest.mark.slow
def test_cancel_stops_the_process(local_backend, sample_data_files):
    job, pid = _running_job(local_backend, sample_data_files)
    status = local_backend.cancel(job)
    assert status.state == "Canceled"
    wait_for(lambda: not psutil.pid_exists(pid), timeout=10, what="the trainer to exit")
    assert any("canceled" in line for line in local_backend.logs(job).lines)
    assert local_backend.cancel(job).state == "Canceled"  # cancelling again is harmless


def test_crash_gives_failed_with_the_error(local_backend, tmp_path):
    from azml_magics.backends.base import DataFiles

    bad = tmp_path / "train.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n' * 3)
    ref = submit_tiny(local_backend, DataFiles(train=str(bad)), max_steps=2)
    status = wait_done(local_backend, ref.name, timeout=120)
    assert status.state == "Failed"
    assert status.error.startswith("validate data failed") and "at least 10" in status.error
    assert any("Traceback" in line for line in local_backend.logs(ref.name).lines)


@pytest.mark.slow
def test_dead_pid_found_by_another_process(local_backend, sample_data_files):
    """A trainer killed while no one watched (kernel restart) is found Failed by a fresh backend."""
    from azml_magics.backends.local import LocalBackend

    job, pid = _running_job(local_backend, sample_data_files)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), timeout=10, what="exit")
    fresh = LocalBackend()
    fresh.connect({"home": str(local_backend.home)})
    status = fresh.status(job)
    assert status.state == "Failed" and "without finishing" in status.error
