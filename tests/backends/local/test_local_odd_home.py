"""Home folders with '?', '%', '#' and spaces: the MLflow store and its artifacts stay inside them."""

from __future__ import annotations

import pytest

from azml_magics.backends.local import registry


@pytest.mark.parametrize("folder", ["with space", "q?mark per%25cent hash#tag &;="])
def test_the_store_lands_inside_an_oddly_named_home(tmp_path, folder):
    home = tmp_path / folder / "home"
    home.mkdir(parents=True)
    experiment = registry.ensure_experiment(home, "odd")
    mc = registry.client(home)
    run = mc.create_run(experiment)
    mc.log_metric(run.info.run_id, "loss", 0.5)
    assert (home / "mlflow.db").is_file()
    assert sorted(p.name for p in tmp_path.rglob("mlflow.db")) == ["mlflow.db"]  # nowhere else
    artifacts = registry.model_artifacts(home, f"runs:/{run.info.run_id}/model")
    assert artifacts.is_relative_to(home / "mlartifacts" / "odd")
    assert [m.value for m in mc.get_metric_history(run.info.run_id, "loss")] == [0.5]


def test_connect_names_the_quoted_uri(tmp_path):
    from azml_magics.api import Session

    home = tmp_path / "a b?c#d%e"
    ws = Session(home=home).connect("local")
    assert ws.details["mlflow_tracking_uri"].endswith("/a%20b%3Fc%23d%25e/mlflow.db")
