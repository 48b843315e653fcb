"""Experiments and runs that MLflow clients create in the workspace (an evaluation run, say), beside the
ones the emulator derives from its pipeline jobs (routes_mlflow.py).

Shapes are MLflow's own REST messages (mlflow/protos/service.proto: Experiment, RunInfo, RunData, Metric,
Param, RunTag), which Azure ML's tracking service speaks ("Azure Machine Learning workspaces are
MLflow-compatible ... uses the MLflow APIs directly", learn.microsoft.com concept-mlflow). Artifact URIs
have Azure's ``azureml://experiments/<name>/runs/<id>/artifacts`` form, as the derived runs do.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class ClientRun:
    info: dict
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[dict]] = field(default_factory=dict)  # key -> points in logging order

    def as_json(self) -> dict:
        latest = [points[-1] for points in self.metrics.values() if points]
        return {"info": dict(self.info),
                "data": {"metrics": latest, "params": [{"key": k, "value": v} for k, v in self.params.items()],
                         "tags": [{"key": k, "value": v} for k, v in self.tags.items()]},
                "inputs": {}}


class ClientRuns:
    """What clients created: experiments by name, runs by id. Guarded by the emulator state's lock."""

    def __init__(self) -> None:
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, ClientRun] = {}

    def clear(self) -> None:
        self.experiments.clear()
        self.runs.clear()

    def create_experiment(self, name: str, experiment_id: str, tags: list[dict]) -> dict:
        now = int(time.time() * 1000)
        self.experiments[name] = {"experiment_id": experiment_id, "name": name, "lifecycle_stage": "active",
                                  "artifact_location": f"azureml://experiments/{name}", "creation_time": now,
                                  "last_update_time": now, "tags": [t for t in tags if "key" in t]}
        return self.experiments[name]

    def create_run(self, experiment: dict, run_name: str | None, start_time: int | None, user: str,
                   tags: dict[str, str]) -> ClientRun:
        run_id = uuid.uuid4().hex
        name = run_name or tags.get("mlflow.runName") or run_id
        info = {"run_id": run_id, "run_uuid": run_id, "run_name": name, "experiment_id": experiment["experiment_id"],
                "user_id": user, "status": "RUNNING", "start_time": start_time or int(time.time() * 1000),
                "artifact_uri": f"azureml://experiments/{experiment['name']}/runs/{run_id}/artifacts",
                "lifecycle_stage": "active"}
        run = ClientRun(info, tags={**tags, "mlflow.runName": name})
        self.runs[run_id] = run
        return run
