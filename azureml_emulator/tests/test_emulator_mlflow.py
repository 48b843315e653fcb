"""The workspace's MLflow tracking API, read with the real ``mlflow.MlflowClient``: the pipeline's runs
(tag ``mlflow.rootRunId``), and the fine-tune run's loss, eval_loss and learning_rate growing on the clock.
"""

from __future__ import annotations

import time

import httpx
import pytest

from azureml_emulator.tests.test_emulator_jobs import _body, _put

pytestmark = pytest.mark.azure


@pytest.fixture
def mlflow_client(azure_emulator, monkeypatch):
    """An MlflowClient on the workspace's tracking URI, as a backend builds it: the https form of
    ``workspace.mlflow_tracking_uri`` and an Entra token in MLFLOW_TRACKING_TOKEN."""
    import mlflow
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    emu = azure_emulator
    credential = DefaultAzureCredential()
    ws = MLClient(credential, emu.subscription_id, emu.resource_group, emu.workspace).workspaces.get(emu.workspace)
    assert ws.mlflow_tracking_uri.startswith("azureml://127.0.0.1:")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", credential.get_token("https://ml.azure.com/.default").token)
    return mlflow.MlflowClient(tracking_uri="https://" + ws.mlflow_tracking_uri.removeprefix("azureml://"))


def _finetune(client, experiment_id: str, job: str):
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.rootRunId = '{job}'")
    return {r.data.tags.get("azureml.nodeid", "pipeline"): r for r in runs}


def test_finetune_metrics_grow_over_the_running_time(azure_emulator, mlflow_client):
    emu = azure_emulator
    emu.faults.job_duration = 8.0
    assert _put(emu, "job-metrics", _body()).status_code == 201
    assert _put(emu, "job-other", _body()).status_code == 201  # another pipeline in the same experiment
    experiment = mlflow_client.get_experiment_by_name("exp")
    assert experiment is not None and experiment.name == "exp"

    lengths = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = _finetune(mlflow_client, experiment.experiment_id, "job-metrics")
        if "finetune" in runs:
            lengths.append(len(mlflow_client.get_metric_history(runs["finetune"].info.run_id, "loss")))
            if runs["finetune"].info.status == "FINISHED":
                break
        time.sleep(0.25)
    assert lengths == sorted(lengths) and lengths[-1] == 10
    assert any(0 < n < 10 for n in lengths), f"never seen mid-training: {lengths}"

    runs = _finetune(mlflow_client, experiment.experiment_id, "job-metrics")
    assert {"validation", "model_import", "preprocess", "finetune", "pipeline"} <= set(runs)
    assert all(r.data.tags["mlflow.rootRunId"] == "job-metrics" for r in runs.values())
    finetune = runs["finetune"]
    loss = mlflow_client.get_metric_history(finetune.info.run_id, "loss")
    assert [m.step for m in loss] == list(range(1, 11))
    assert all(a.value > b.value for a, b in zip(loss, loss[1:]))  # it learns
    assert [m.step for m in mlflow_client.get_metric_history(finetune.info.run_id, "eval_loss")] == [5, 10]
    rates = [m.value for m in mlflow_client.get_metric_history(finetune.info.run_id, "learning_rate")]
    assert rates[0] == pytest.approx(5e-6) and rates == sorted(rates, reverse=True)  # the job's input, decaying
    assert set(finetune.data.metrics) == {"loss", "eval_loss", "learning_rate"}
    sub = runs["chat_completion_pipeline"]  # job -> chat_completion_pipeline -> steps, as on Azure
    assert mlflow_client.get_run(finetune.info.run_id).data.tags["mlflow.parentRunId"] == sub.info.run_id
    assert sub.data.tags["mlflow.parentRunId"] == "job-metrics"
    # the std_log prints the same curve
    log = httpx.get(f"{emu.base_url}/_logs/{finetune.info.run_id}/user_logs/std_log.txt",
                    verify=str(emu.tls.ca_bundle)).text
    assert f"'loss': {loss[-1].value:.4f}" in log


def test_unknown_experiment_and_run_answer_like_mlflow(azure_emulator, mlflow_client):
    from mlflow.exceptions import MlflowException

    assert mlflow_client.get_experiment_by_name("no-such-experiment") is None
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
        mlflow_client.get_run("no-such-run")


def test_mlflow_routes_need_a_token(azure_emulator):
    emu = azure_emulator
    url = (f"{emu.base_url}/mlflow/v1.0/subscriptions/{emu.subscription_id}/resourceGroups/{emu.resource_group}"
           f"/providers/Microsoft.MachineLearningServices/workspaces/{emu.workspace}/api/2.0/mlflow/"
           "experiments/get-by-name")
    assert httpx.get(url, params={"experiment_name": "exp"}, verify=str(emu.tls.ca_bundle)).status_code == 401
    bad_filter = httpx.post(url.replace("experiments/get-by-name", "runs/search"), verify=str(emu.tls.ca_bundle),
                            headers={"Authorization": "Bearer emulator-static-token"},
                            json={"experiment_ids": ["x"], "filter": "metrics.loss > 1"})
    assert bad_filter.status_code == 400 and bad_filter.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_a_client_logs_its_own_run_beside_the_jobs_on_both_api_roots(azure_emulator, mlflow_client):
    """MLflow's REST write calls (RestStore's CreateExperiment, CreateRun, LogMetric, LogParam, SetTag,
    LogBatch, UpdateRun) through the real MlflowClient, on the v1.0 root and on v2.0 as azureml-mlflow uses."""
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    v2 = mlflow.MlflowClient(tracking_uri=mlflow_client.tracking_uri.replace("/mlflow/v1.0/", "/mlflow/v2.0/"))
    exp_id = v2.create_experiment("evals")
    with pytest.raises(MlflowException, match="RESOURCE_ALREADY_EXISTS"):
        mlflow_client.create_experiment("evals")
    run = v2.create_run(exp_id, run_name="eval-1", tags={"azml.kind": "evaluation"})
    run_id = run.info.run_id
    v2.log_param(run_id, "rows", "3")
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        v2.log_param(run_id, "rows", "4")
    v2.log_metric(run_id, "rougeL", 0.25, step=0)
    v2.log_metric(run_id, "rougeL", 0.5, step=1)
    v2.log_batch(run_id, metrics=[Metric("bleu", 3.5, 0, 0)], params=[Param("seed", "0")])
    v2.set_tag(run_id, "azml.job", "job-x")
    v2.set_terminated(run_id)

    got = mlflow_client.get_run(run_id)  # read back on the other root
    assert got.info.status == "FINISHED" and got.info.end_time and got.info.run_name == "eval-1"
    assert got.data.metrics == {"rougeL": 0.5, "bleu": 3.5}
    assert got.data.params == {"rows": "3", "seed": "0"}
    assert got.data.tags["azml.job"] == "job-x" and got.data.tags["azml.kind"] == "evaluation"
    assert [m.value for m in mlflow_client.get_metric_history(run_id, "rougeL")] == [0.25, 0.5]
    found = mlflow_client.search_runs([exp_id], filter_string="tags.azml.kind = 'evaluation'")
    assert [r.info.run_id for r in found] == [run_id]
    assert mlflow_client.get_experiment_by_name("evals").experiment_id == exp_id

    assert _put(azure_emulator, "job-readonly", _body()).status_code == 201  # a job's run is the service's own
    with pytest.raises(MlflowException, match="read-only"):
        v2.log_metric("job-readonly", "loss", 1.0)
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        v2.log_metric("no-such-run", "loss", 1.0)
