"""%azml_eval on Azure: the fine-tuned model and its base compared through managed endpoints.

The real azure-ai-ml SDK against the loopback emulator, driven through the magics in a real IPython
shell: the base model is deployed from its registry id (``%azml_deploy --base``), both endpoints are
scored with the same rows, their cost is shown, and ``%azml_delete --all`` removes both.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from azml_magics import api
from tests.paths import SAMPLE
from tests.shell import run_cell

pytestmark = pytest.mark.azure

MODEL = "Phi-4"  # live in the published registry assets (the Phi-3 family is archived)
REGISTRY_ID = f"azureml://registries/azureml/models/{MODEL}/versions/8"
SPEC = {"model": MODEL, "data": {"train": str(SAMPLE / "train_sft.jsonl"), "test": str(SAMPLE / "test_sft.jsonl")},
        "compute": {"name": "gpu-eval", "size": "Standard_NC24ads_A100_v4", "max_instances": 2},
        "parameters": {"num_train_epochs": 1}}
CREATES = ("endpoint_create", "deployment_create")


def shown(out, outputs) -> str:
    return out + "".join(o.data.get("text/html", "") or o.data.get("text/plain", "") for o in outputs)


def one_line_refusal(ip, line: str, expected: str) -> None:
    res, out, _ = run_cell(ip, line)
    err = res.error_in_exec
    assert isinstance(err, UsageError) and "\n" not in str(err).strip() and expected in str(err), (line, err, out)


@pytest.fixture
def connected(azure_emulator, ip, tmp_path, monkeypatch):
    """The magics' session on the emulator, with a completed fine-tune registered: (emulator, shell, ref)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    azure_emulator.faults.job_duration = 2.0
    api.reset_session(api.Session(home=tmp_path / "home", poll_interval=0.05))
    res, out, _ = run_cell(ip, f"%azml_connect --backend azure --subscription {azure_emulator.subscription_id} "
                               f"--resource-group {azure_emulator.resource_group} --workspace {azure_emulator.workspace}")
    assert res.success, out
    session = api.session()
    session.backend.deploy_timeout = 60
    job = session.finetune(SPEC)
    assert session.watch(job.name, interval=0.1, timeout=60).state == "Completed"
    yield azure_emulator, ip, session.register(job.name)
    api.reset_session()


def test_base_and_fine_tuned_compared_through_their_endpoints_then_deleted(connected):
    emulator, ip, ref = connected
    label = f"{ref.name}:{ref.version}"
    mark = len(emulator.requests())
    # nothing deployed yet: one line that says how, and nothing scored or created
    one_line_refusal(ip, f"%azml_eval --data {SAMPLE} -n 3", "%azml_deploy --base --endpoint NAME")
    one_line_refusal(ip, "%azml_deploy --base --endpoint base-t4 --instance-type Standard_NC4as_T4_v3",
                     "Standard_NC4as_T4_v3 is not in")
    assert [e["route"] for e in emulator.requests()[mark:] if e["route"] in CREATES + ("score",)] == []

    res, out, outputs = run_cell(ip, "%azml_deploy --endpoint tuned-eval")
    assert res.success, out
    res, out, outputs = run_cell(ip, "%azml_deploy --base --endpoint base-eval")
    assert res.success, out
    assert "base-eval bills 1 x Standard_NC24ads_A100_v4" in shown(out, outputs)
    # the base endpoint serves the registry model itself; the other the workspace's fine-tuned one
    models = {ep: deps["demo"]["properties"]["model"] for ep, deps in emulator.state.deployments.items()}
    assert models["base-eval"] == REGISTRY_ID
    assert models["tuned-eval"].endswith(f"/models/{ref.name}/versions/{ref.version}")

    mark = len(emulator.requests())
    res, out, outputs = run_cell(ip, f"%azml_eval --data {SAMPLE} -n 3 --max-new-tokens 16 --examples 2")
    assert res.error_in_exec is None, out
    page = shown(out, outputs)
    assert f"base {MODEL}" in page and label in page and "rougeL" in page and "delta" in page
    for endpoint in ("base-eval", "tuned-eval"):
        assert f"endpoint {endpoint} bills 1 x Standard_NC24ads_A100_v4" in page
    # logged to the workspace's MLflow (its REST API, signed by the connection's credential), in the job's
    # experiment and linked to it; the per-row table stays here, and the output says why and where
    assert "logged to workspace " in page and "azureml-mlflow" in page, page
    runs = list(emulator.state.mlflow.runs.values())
    assert len(runs) == 1 and runs[0].tags["azml.kind"] == "evaluation", runs
    client = api.session().backend.tracking().client
    run = client.get_run(runs[0].info["run_id"])
    assert run.data.tags["azml.job"] == ref.job and run.data.tags["azml.job_run_id"] == ref.job
    assert run.info.experiment_id == client.get_run(ref.job).info.experiment_id
    assert run.info.status == "FINISHED" and run.data.params["rows"] == "3"
    metrics = run.data.metrics
    assert {f"base_{MODEL}.rougeL", "delta.rougeL"} <= set(metrics), metrics
    from pathlib import Path

    table = Path(run.data.tags["azml.table_file"])
    assert table.is_file() and str(table) in page
    assert "MLFLOW_TRACKING_TOKEN" not in __import__("os").environ  # the token never goes into the environment
    used = {e["route"] for e in emulator.requests()[mark:]}
    assert {"mlflow_run_create_v2", "mlflow_log_metric_v2", "mlflow_run_update_v2"} <= used, used
    scored = [e["path"] for e in emulator.requests()[mark:] if e["route"] == "score"]
    assert sorted(p.split("/")[2] for p in scored) == ["base-eval"] * 3 + ["tuned-eval"] * 3

    # the same through the API: the rows got one reply from each endpoint, and the prompts were the rows'
    result = api.session().evaluate(data=SAMPLE, n=3, progress=False, log=False)
    assert result.candidates == [f"base {MODEL}", label]
    assert len(result.rows) == 3 and all(set(r.replies) == set(result.candidates) for r in result.rows)
    for row in result.rows:
        asked = row.prompt[-1]["content"][:40]
        assert all(asked.split()[0] in reply for reply in row.replies.values()), (asked, row.replies)
    assert set(result.metrics["rougeL"]) == set(result.candidates)

    res, out, outputs = run_cell(ip, "%azml_delete --all")
    assert res.success, out
    text = shown(out, outputs)
    assert "base-eval" in text and "tuned-eval" in text
    assert "base-eval" not in emulator.state.endpoints and "tuned-eval" not in emulator.state.endpoints
    assert not api.session().state.list("endpoints")


def test_named_endpoints_and_a_base_model_missing_from_the_registry(connected):
    emulator, ip, ref = connected
    session = api.session()
    session.deploy({"model": f"{ref.name}:{ref.version}", "endpoint": "only-tuned"})
    result = session.evaluate(["endpoint:only-tuned", f"{ref.name}:{ref.version}"], data=SAMPLE, n=2,
                              progress=False, log=False)
    # the same endpoint twice answers the same deterministic replies: no difference, measured
    assert result.metrics["rougeL"]["endpoint only-tuned"] == result.metrics["rougeL"][f"{ref.name}:{ref.version}"]

    # a model whose base is no longer in the registry: its base cannot be deployed, said in one line
    from azure.ai.ml.entities import Model

    session.backend.clients.workspace.models.create_or_update(Model(
        path=f"azureml://jobs/{ref.job}/outputs/trained_model", type="mlflow_model", name="orphan-tuned",
        version="1", tags={"azml.job": ref.job, "azml.base_model": "azureml://registries/azureml/models/Gone-model/versions/1"}))
    mark = len(emulator.requests())
    one_line_refusal(ip, "%azml_deploy orphan-tuned:1 --base --endpoint base-gone", "'Gone-model' version 1 is not in")
    one_line_refusal(ip, "%azml_eval base:orphan-tuned:1 orphan-tuned:1", "'Gone-model' version 1 is not in")
    assert [e for e in emulator.requests()[mark:] if e["route"] in CREATES + ("score",)] == []
    session.delete(all=True)
