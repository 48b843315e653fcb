"""%azml_jobs list and compare: final losses, key parameters, two jobs overlaid; plain HTML that saves."""

from __future__ import annotations

import base64
import re

import pytest

from azml_magics.errors import NotFound
from azml_magics.ui import jobtable
from tests.shell import run_cell


def _two_finished_jobs(session, backend):
    for name, lr in (("job-a", 5e-6), ("job-b", 2e-5)):
        backend.add_job(name)
        session.state.add("jobs", name, parameters={"learning_rate": lr, "num_train_epochs": 1, "seed": 42})
        session.watch(name, interval=0.001)


def test_list_shows_final_losses_and_key_parameters(scripted):
    session, backend = scripted
    _two_finished_jobs(session, backend)
    table = jobtable.jobs_table(session)
    assert table.columns[:5] == ["job", "state", "started", "final loss", "final eval loss"]
    row = {r[0]: r for r in table.rows}["job-b"]
    loss, evals = backend.jobs["job-b"].loss[-1].value, backend.jobs["job-b"].eval_loss[-1].value
    assert row[1] == "Completed" and row[3] == round(loss, 4) and row[4] == round(evals, 4)
    assert "learning_rate=2e-05" in row[5] and "num_train_epochs=1" in row[5]
    assert "%azml_jobs compare" in str(table)


def test_compare_overlays_both_curves_and_lists_the_differences(scripted):
    session, backend = scripted
    _two_finished_jobs(session, backend)
    out = jobtable.compare(session, "job-a", "job-b")
    page = out.html()
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
    assert png.startswith(b"\x89PNG")
    assert "alt='loss of job-a and job-b'" in page
    assert re.search(r"Parameters that differ.*learning_rate</td><td[^>]*>5e-06</td><td[^>]*>2e-05", page)
    assert "the same: num_train_epochs=1, seed=42" in page
    assert "seed</td>" not in page  # an equal parameter is not listed as a difference
    assert "learning_rate" in str(out)  # the text twin too


def test_compare_of_an_unknown_job_is_one_line(scripted):
    session, backend = scripted
    _two_finished_jobs(session, backend)
    with pytest.raises(NotFound, match="no job named nope"):
        jobtable.compare(session, "job-a", "nope")


def test_the_magics_route_list_compare_and_metrics(scripted, ip):
    session, backend = scripted
    _two_finished_jobs(session, backend)
    ip.azml.session = session
    _, _, outputs = run_cell(ip, "%azml_jobs compare job-a job-b")
    assert "Parameters that differ" in outputs[-1].data["text/html"]
    result, out, _ = run_cell(ip, "%azml_jobs compare job-a")
    assert "needs two job names" in str(result.error_in_exec)
    _, _, outputs = run_cell(ip, "%azml_jobs metrics job-a")
    text = outputs[-1].data["text/plain"]
    assert re.search(r"loss\s+\d+\s+2\s+\S+\s+\S+ \(lowest\)", text), text
    assert not re.search(r"learning_rate.*(lowest|highest)", text)  # no 'best' of a learning rate


def test_submit_keeps_the_key_parameters_in_the_state(scripted, tmp_path):
    from azml_magics.data import sample_dir

    session, backend = scripted
    spec = {"model": "Phi-3-mini-4k-instruct", "data": {"train": f"{sample_dir()}/train_sft.jsonl"},
            "compute": {"size": "Standard_NC24ads_A100_v4"}, "parameters": {"learning_rate": 3e-5}}
    job = session.finetune(spec)
    params = session.state.get("jobs", job.name).info["parameters"]
    assert params["learning_rate"] == 3e-5 and "apply_lora" in params
    assert set(params) <= set(__import__("azml_magics.defaults", fromlist=["x"]).KEY_PARAMETERS)
