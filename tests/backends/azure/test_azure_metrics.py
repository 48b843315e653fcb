"""Job metrics come from the workspace's MLflow REST API: checked against a real MLflow server.

The emulator does not serve MLflow, so this test starts ``mlflow server`` on 127.0.0.1, records a
pipeline's child runs the way Azure ML does (tag ``mlflow.rootRunId`` = the pipeline job's name), and
reads them back through the backend's metrics code with a real credential (the emulator's token).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.azure, pytest.mark.slow]


@pytest.fixture
def mlflow_server(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    import requests

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"{base}/health", timeout=1)
            break
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(0.3)
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def _log_run(base: str, experiment_id: str, root: str, points: dict[str, list[float]]) -> None:
    import requests

    api = f"{base}/api/2.0/mlflow"
    run = requests.post(f"{api}/runs/create", json={
        "experiment_id": experiment_id, "tags": [{"key": "mlflow.rootRunId", "value": root}]}, timeout=30).json()
    run_id = run["run"]["info"]["run_id"]
    for key, values in points.items():
        for step, value in enumerate(values):
            requests.post(f"{api}/runs/log-metric", json={
                "run_id": run_id, "key": key, "value": value, "step": step * 10, "timestamp": 1_700_000_000_000 + step,
            }, timeout=30).raise_for_status()


def test_metrics_of_the_pipelines_runs_by_name(mlflow_server, azure_emulator):
    import requests
    from azure.identity import DefaultAzureCredential

    from azml_magics.backends.azure import jobs

    api = f"{mlflow_server}/api/2.0/mlflow"
    exp = requests.post(f"{api}/experiments/create", json={"name": "chat_completion_X"}, timeout=30).json()
    _log_run(mlflow_server, exp["experiment_id"], "job-a", {"loss": [2.0, 1.5, 1.2], "eval_loss": [1.9, 1.6]})
    _log_run(mlflow_server, exp["experiment_id"], "job-b", {"loss": [9.0]})  # another pipeline: not ours

    series = jobs.metrics(DefaultAzureCredential(), mlflow_server, "chat_completion_X", "job-a")
    assert sorted(series) == ["eval_loss", "loss"]
    assert [(p.step, p.value) for p in series["loss"]] == [(0, 2.0), (10, 1.5), (20, 1.2)]
    assert jobs.metrics(DefaultAzureCredential(), mlflow_server, "no_such_experiment", "job-a") == {}
    assert jobs.metrics(DefaultAzureCredential(), None, "chat_completion_X", "job-a") == {}
