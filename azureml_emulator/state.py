"""In-memory service state: resources, long-running operations, job clocks, the request log.

One lock guards everything; handlers are quick and run under it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from .faults import STEPS, Faults

# NotStarted -> Queued -> Running -> Completed, as fractions of the job's duration.
_QUEUED_AT, _RUNNING_AT = 0.1, 0.2


@dataclass
class Operation:
    """A long-running operation; ``done_at`` is when its status turns Succeeded."""

    id: str
    done_at: float
    on_done: object = None  # callable run once when it completes
    stuck: bool = False
    finished: bool = False
    running_status: str = "InProgress"  # what the status URL reads until done (online endpoints: Updating)


@dataclass
class Job:
    name: str
    body: dict
    created: float
    duration: float
    experiment: str
    fail_step: str | None = None
    fail_error: str = ""
    canceled_at: float | None = None
    run_ids: dict[str, str] = field(default_factory=dict)  # step -> its run id (grandchildren of the job)
    pipeline_run_id: str = ""  # the job's one child: the registry's chat_completion_pipeline, a pipeline
    registered: tuple | None = None  # FineTuning jobs: (model name, version) of the registered output

    def pipeline_state(self, now: float) -> tuple[str, float | None, float | None]:
        """(state, start, end) of the chat_completion_pipeline child: from its first step's start."""
        first = self.step_state(STEPS[0], now)
        if first[1] is None:
            return first
        return self.state(now), first[1], self.end_time(now)

    def _window(self, index: int) -> tuple[float, float]:
        run = self.duration * (1 - _RUNNING_AT) / len(STEPS)
        start = self.created + self.duration * _RUNNING_AT + index * run
        return start, start + run

    def step_state(self, step: str, now: float) -> tuple[str, float | None, float | None]:
        """(state, start, end) of one child step at NOW."""
        i = STEPS.index(step)
        start, end = self._window(i)
        stop = self._stop_time()
        if stop is not None and stop <= start:
            return ("NotStarted", None, None)
        if now < start:
            return ("NotStarted" if now < self.created + self.duration * _RUNNING_AT else "Queued", None, None)
        if self.canceled_at is not None and self.canceled_at < end and now >= self.canceled_at:
            return ("Canceled", start, self.canceled_at)
        if now < end:
            return ("Running", start, None)
        if self.fail_step == step:
            return ("Failed", start, end)
        return ("Completed", start, end)

    def _stop_time(self) -> float | None:
        """When the pipeline stopped early: failed step's end or the cancel time."""
        times = []
        if self.fail_step:
            times.append(self._window(STEPS.index(self.fail_step))[1])
        if self.canceled_at is not None:
            times.append(self.canceled_at)
        return min(times) if times else None

    def state(self, now: float) -> str:
        stop = self._stop_time()
        if stop is not None and now >= stop:
            if self.canceled_at is not None and self.canceled_at == stop:
                return "Canceled"
            return "Failed"
        if self.canceled_at is not None:
            return "CancelRequested"
        elapsed = now - self.created
        if elapsed < self.duration * _QUEUED_AT:
            return "NotStarted"
        if elapsed < self.duration * _RUNNING_AT:
            return "Queued"
        if elapsed < self.duration:
            return "Running"
        return "Completed"

    def end_time(self, now: float) -> float | None:
        stop = self._stop_time()
        if stop is not None and now >= stop:
            return stop
        end = self.created + self.duration
        return end if now >= end else None


class EmulatorState:
    # routes that need no bearer token (discovery, auth, control, scoring has its own key check)
    OPEN_ROUTES = frozenset({
        "cloud_metadata", "openid_configuration", "openid_configuration_adfs", "instance_discovery", "token",
        "token_v1", "control_requests", "control_faults_get", "control_faults_set", "control_faults_reset",
        "score", "chat_completions", "serverless_chat_completions", "log_download", "workspace_discovery",
    })

    def __init__(self, emulator, *, job_duration: float, lro_retry_after: float) -> None:
        self.emulator = emulator
        self.lock = threading.RLock()
        self.faults = Faults()
        self.default_job_duration = job_duration
        self.lro_retry_after = lro_retry_after
        self.tokens: set[str] = set()
        self.static_tokens: set[str] = {"emulator-static-token"}
        self._log: list[dict] = []
        self._responses: list[dict] = []
        self.computes: dict[str, dict] = {}
        self.data: dict[str, dict[str, dict]] = {}      # name -> version -> resource
        self.models: dict[str, dict[str, dict]] = {}    # workspace models
        self.jobs: dict[str, Job] = {}
        self.job_bodies: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.endpoint_keys: dict[str, tuple[str, str]] = {}
        self.deployments: dict[str, dict[str, dict]] = {}
        self.marketplace_subscriptions: dict[str, dict] = {}
        self.serverless_endpoints: dict[str, dict] = {}  # name -> record (model id, state, keys)
        self.operations: dict[str, Operation] = {}
        self.metrics: dict[str, list[dict]] = {}         # run id -> metric points
        self.streams: list[dict] = []  # each streamed chat reply: deployment, words sent, words, finished
        from .mlflow_runs import ClientRuns

        self.mlflow = ClientRuns()  # experiments and runs MLflow clients created (routes_mlflow_write.py)
        from .run_logs import RunLogs

        self.run_logs = RunLogs(emulator)
        self.closed = False

    # -- request log -----------------------------------------------------------------------------
    def log_request(self, name: str, req) -> None:
        entry = {"route": name, "method": req.method, "path": req.path, "query": dict(req.query),
                 "json": req.json if name not in ("token", "token_v1") else None, "time": time.time()}
        with self.lock:
            self._log.append(entry)

    def log_response(self, name: str, req, response) -> None:
        """Keep what a route answered (status and JSON body), in memory only: tests validate bodies
        against the REST specs. Token answers are never kept; nothing here is served over HTTP."""
        if name in ("token", "token_v1"):
            return
        body = getattr(response, "body", None)
        try:
            parsed = json.loads(body) if body and "json" in (response.media_type or "") else None
        except ValueError:
            parsed = None
        entry = {"route": name, "method": req.method, "path": req.path, "query": dict(req.query),
                 "status": response.status_code, "json": parsed}
        with self.lock:
            self._responses.append(entry)

    def response_log(self) -> list[dict]:
        with self.lock:
            return [dict(e) for e in self._responses]

    def request_log(self) -> list[dict]:
        with self.lock:
            return [dict(e) for e in self._log]

    def clear_log(self) -> None:
        with self.lock:
            self._log.clear()
            self._responses.clear()

    # -- auth ------------------------------------------------------------------------------------
    def authorized(self, req) -> bool:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return scheme.lower() == "bearer" and (token in self.tokens or token in self.static_tokens)

    # -- long-running operations -----------------------------------------------------------------
    def new_operation(self, on_done=None, *, stuck: bool = False, running_status: str = "InProgress") -> Operation:
        op = Operation(str(uuid.uuid4()), time.monotonic() + float(self.faults.lro_delay), on_done, stuck,
                       running_status=running_status)
        self.operations[op.id] = op
        return op

    def operation_status(self, op_id: str) -> str | None:
        op = self.operations.get(op_id)
        if op is None:
            return None
        if op.stuck or time.monotonic() < op.done_at:
            return op.running_status
        if not op.finished:
            op.finished = True
            if op.on_done is not None:
                op.on_done()
        return "Succeeded"

    # -- jobs ------------------------------------------------------------------------------------
    def new_job(self, name: str, body: dict, experiment: str) -> Job:
        duration = self.faults.job_duration if self.faults.job_duration is not None else self.default_job_duration
        job = Job(name, body, time.time(), float(duration), experiment, self.faults.failing_step,
                  self.faults.failing_step_error)
        job.run_ids = {step: f"{name}_{step}_{uuid.uuid4().hex[:8]}" for step in STEPS}
        job.pipeline_run_id = f"{name}_chat_completion_pipeline_{uuid.uuid4().hex[:8]}"
        self.jobs[name] = job
        return job

    def reset_resources(self) -> None:
        """Forget everything created (computes, data, models, jobs, endpoints): a fresh workspace."""
        with self.lock:
            for store in (self.computes, self.data, self.models, self.jobs, self.job_bodies, self.endpoints,
                          self.endpoint_keys, self.deployments, self.operations, self.metrics, self.streams,
                          self.marketplace_subscriptions, self.serverless_endpoints):
                store.clear()
            self.mlflow.clear()
            self.run_logs.reset()

    def close(self) -> None:
        self.closed = True
