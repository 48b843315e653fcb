"""The notebooks run headless in a real kernel: the README's main command, as CI runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_local_notebook_runs_end_to_end(tmp_path):
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "quickstart_local.ipynb", work)
    saved = work / "executed.ipynb"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(work / "quickstart_local.ipynb"),
         "--save", str(saved), "--timeout", "600"],
        capture_output=True, text=True, timeout=900, cwd=work,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    # the report cells printed the metrics, the scoring response and the reply
    assert "loss" in out and "eval_loss" in out
    assert '"output"' in out
    assert "reply:" in out
    assert "Deleted: endpoint tiny-quickstart" in out

    # the loss fell: read the metrics back from the real MLflow store the notebook used
    from azml_magics.api import Session

    s = Session(home=work / ".azml_home")
    s.connect("local")
    job = s.state.list("jobs")[-1].name
    loss = [p.value for p in s.metrics(job)["loss"]]
    assert len(loss) >= 3 and loss[-1] < loss[0] * 0.9, loss
    assert s.endpoints() == [] or all(e.state != "Succeeded" for e in s.endpoints())

    # the notebook ends with %azml_eval: the fine-tuned model is ahead of its base, in the run it logged
    from mlflow.tracking import MlflowClient

    uri = s.workspace.details["mlflow_tracking_uri"]
    mc = MlflowClient(uri)
    runs = mc.search_runs([e.experiment_id for e in mc.search_experiments()], "tags.`azml.kind` = 'evaluation'")
    assert len(runs) == 1, runs
    assert runs[0].data.metrics["delta.loss"] < 0 and runs[0].data.metrics["delta.rougeL"] > 0, runs[0].data.metrics
    assert "rougeL" in out and "Examples, largest difference first" in out

    # the saved notebook holds no secret
    text = saved.read_text()
    assert "Bearer" not in text and "api_key" not in text
    nb = json.loads(text)
    assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
