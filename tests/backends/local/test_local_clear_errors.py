"""Nothing left dangling on the local backend: a killed trainer's MLflow run is closed as FAILED, and
``%azml_delete --all`` goes past one bad record, stops the rest and names what it could not delete."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest
from IPython.core.error import UsageError

from azml_magics.backends.local import endpoints, jobfiles, registry
from azml_magics.backends.local import jobs as local_jobs
from tests.shell import run_cell

from .tiny_jobs import submit_tiny


def test_a_killed_trainers_mlflow_run_is_closed_as_failed(local_backend, sample_data_files):
    ref = submit_tiny(local_backend, sample_data_files, num_train_epochs=50)
    folder = jobfiles.job_dir(local_backend.home, ref.name)
    deadline = time.time() + 180
    status = {}
    while time.time() < deadline:  # the trainer creates its run once the model is loaded
        status = json.loads((folder / "status.json").read_text())
        if status.get("run_id"):
            break
        time.sleep(0.2)
    assert status.get("run_id"), status
    mc = registry.client(local_backend.home)
    assert mc.get_run(status["run_id"]).info.status == "RUNNING"
    os.killpg(status["pid"], signal.SIGKILL)  # out of memory, say: the trainer cannot close its run
    # Wait through the backend's own Popen: psutil's wait() would reap the child itself, and Popen then
    # reads the lost exit status as 0 ("exited with code 0"), which is the test's doing, not the backend's.
    local_jobs._children[status["pid"]].wait(timeout=30)

    job = local_backend.status(ref.name)
    assert job.state == "Failed" and "killed by signal 9" in job.error, job
    assert mc.get_run(status["run_id"]).info.status == "FAILED"


@pytest.fixture
def home(azml_home):
    yield azml_home
    for record in (azml_home / "endpoints").glob("*.json"):  # never leave a server behind
        endpoints.stop_endpoint(azml_home, record.stem)


def test_delete_all_goes_past_a_bad_record_and_names_it(ip, home, tiny_model_dir):
    run_cell(ip, "%azml_connect --backend local")
    state = ip.azml.session.state
    state.add("endpoints", "../../outside", model="tiny:1")  # a hand-edited record, listed first
    ep = endpoints.start_endpoint(home, "ep-good", tiny_model_dir, model_ref="tiny:1")
    state.add("endpoints", "ep-good", model="tiny:1")
    state.add("jobs", "gone-job", model="tiny")  # its folder is gone: nothing to cancel, no complaint

    result, out, _ = run_cell(ip, "%azml_delete --all")
    error = result.error_in_exec
    assert isinstance(error, UsageError) and "\n" not in str(error), out[-2000:]
    assert str(error).startswith("deleted endpoint ep-good; NOT deleted: endpoint ../../outside (endpoint name"), error
    assert "gone-job" not in str(error)
    assert not psutil.pid_exists(ep.details["pid"]) or psutil.Process(ep.details["pid"]).status() == "zombie"
    assert [r.name for r in state.list("endpoints")] == ["../../outside"]  # kept, so it can be fixed
