"""UI fixtures: a small scripted backend (real objects, real data, no mock library) and a session on it.

The scripted backend implements the protocol methods the forms, the job view and the chat box call.
A job advances one step per ``status`` call, writes log lines and loss points as it goes, and can be
told to fail; the chat endpoint replies from the messages it gets and can answer 401, time out or be
gone. It records every call so tests assert what the UI actually asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from azml_magics.backends.base import (
    REGISTERED_MODELS,
    COMPLETED,
    FAILED,
    NOT_STARTED,
    RUNNING,
    ComputeInfo,
    Endpoint,
    JobRef,
    JobStatus,
    JobStep,
    LogChunk,
    MetricPoint,
    ModelInfo,
    ModelRef,
    Workspace,
)
from azml_magics.errors import NotFound, SpecError
from azml_magics.pipeline_inputs import PIPELINE_INPUTS
from azml_magics.scoring import GenerationParams, Reply

STEPS = ("validation", "model import", "preprocess", "fine-tune", "convert")
ALLOW = ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]


@dataclass
class ScriptedJob:
    name: str
    ticks: int = 0  # status calls so far
    fail_at: str | None = None  # a step that fails
    logs: list[tuple[str, str]] = field(default_factory=list)  # (step, line)
    loss: list[MetricPoint] = field(default_factory=list)
    eval_loss: list[MetricPoint] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    canceled: bool = False


class ScriptedBackend:
    """A backend whose job and endpoint behave as scripted; every call is recorded in ``calls``."""

    name = "scripted"
    extra = None
    requires = ()
    capabilities = frozenset({REGISTERED_MODELS})

    def __init__(self, home):
        self.home = home
        self.calls: list[tuple] = []
        self.jobs: dict[str, ScriptedJob] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.submitted: list = []
        self.chat_failure: Exception | None = None  # raised by the next chat/stream call
        self.streams = True
        self.reports_usage = True
        self.status_hook = None  # called with the job at every status() (tests raise from it)
        self.fail_at: str | None = None
        self.archived = False

    # ---------------------------------------------------------------- workspace, models
    def connect(self, options):
        return Workspace(backend=self.name, name="scripted", key=f"scripted:{self.home}")

    def get_model(self, name, version=None, label="latest"):
        self.calls.append(("get_model", name))
        if name.startswith("no-such"):
            raise NotFound(f"no model named {name} in the registry; list them with %azml_models.")
        return ModelInfo(name=name, version="7", id=f"azureml://registries/azureml/models/{name}/versions/7",
                         tasks=["chat-completion"], finetune_allow_list=list(ALLOW),
                         model_defaults={"apply_lora": "true", "learning_rate": 5e-6}, archived=self.archived)

    def list_models(self, task="chat-completion"):
        return [self.get_model("Phi-3-mini-4k-instruct"), self.get_model("Phi-3.5-mini-instruct")]

    def component_inputs(self, version=None):
        return set(PIPELINE_INPUTS)

    def check_compute(self, spec, model):
        if model.finetune_allow_list and spec.size not in model.finetune_allow_list:
            raise SpecError(f"compute.size {spec.size} is not allowed for {model.name}.")
        return ComputeInfo(name=spec.name, size=spec.size, gpus_per_node=1)

    def ensure_compute(self, spec, model):
        return self.check_compute(spec, model)

    def ignored_parameters(self):
        return {}

    # ---------------------------------------------------------------- jobs
    def submit(self, plan):
        name = f"job-{len(self.jobs) + 1}"
        self.jobs[name] = ScriptedJob(name, fail_at=self.fail_at)
        self.submitted.append((plan.spec, plan.effective.values))
        return JobRef(name=name, backend=self.name, display_name=plan.spec.name or name,
                      url=f"https://ml.azure.com/runs/{name}")

    def add_job(self, name="job-x", fail_at=None) -> ScriptedJob:
        self.jobs[name] = ScriptedJob(name, fail_at=fail_at)
        return self.jobs[name]

    def _job(self, name) -> ScriptedJob:
        if name not in self.jobs:
            raise NotFound(f"no job named {name}; list them with %azml_jobs list.")
        return self.jobs[name]

    def status(self, job):
        self.calls.append(("status", job))
        j = self._job(job)
        if self.status_hook:
            self.status_hook(j)
        j.ticks += 1
        current = min(j.ticks - 1, len(STEPS))  # index of the running step
        steps, state, error = [], RUNNING, None
        for i, name in enumerate(STEPS):
            if j.canceled:
                steps.append(JobStep(name, "Canceled"))
            elif i < current:
                steps.append(JobStep(name, COMPLETED, started=j.started + i, ended=j.started + i + 1))
            elif i == current:
                failed = name == j.fail_at
                steps.append(JobStep(name, FAILED if failed else RUNNING, started=j.started + i,
                                     error="CUDA out of memory" if failed else None))
                if failed:
                    state, error = FAILED, f"step {name} failed: CUDA out of memory"
            else:
                steps.append(JobStep(name, NOT_STARTED))
        if current < len(STEPS):
            running = STEPS[current]
            j.logs.append((running, f"[{running}] tick {j.ticks} <ok>"))
            if running == "fine-tune":
                for k in range(3):
                    step = len(j.loss) + 1
                    j.loss.append(MetricPoint(step, 2.0 / step))
                j.eval_loss.append(MetricPoint(len(j.loss), 2.2 / len(j.loss)))
        elif state != FAILED:
            state = COMPLETED
        if j.canceled:
            state = "Canceled"
        return JobStatus(name=job, state=state, steps=steps, started=j.started,
                         ended=time.time() if state in (COMPLETED, FAILED, "Canceled") else None, error=error,
                         progress=min(1.0, current / len(STEPS)), url=f"https://ml.azure.com/runs/{job}")

    def logs(self, job, cursor=None):
        j = self._job(job)
        start = cursor or 0
        new = j.logs[start:]
        step = new[-1][0] if new else None
        return LogChunk([line for _, line in new], len(j.logs), step)

    def metrics(self, job):
        self.calls.append(("metrics", job))
        j = self._job(job)
        return {"loss": list(j.loss), "eval_loss": list(j.eval_loss),
                "learning_rate": [MetricPoint(p.step, 1e-5) for p in j.loss]}

    def cancel(self, job):
        self._job(job).canceled = True
        return self.status(job)

    def list_jobs(self):
        return [self.status(n) for n in self.jobs]

    # ---------------------------------------------------------------- models, endpoints
    def register(self, job, name=None, version=None):
        return ModelRef(name=name or "ft-model", version=version or "1", id="azureml:ft-model:1", job=job)

    def get_registered_model(self, name, version=None, label=None):
        return ModelRef(name=name, version=version or "1", id=f"azureml:{name}:{version or 1}")

    def deploy(self, model, spec):
        self.calls.append(("deploy", model.name, spec.endpoint, spec.instance_type))
        endpoint = Endpoint(name=spec.endpoint, backend=self.name, scoring_uri=f"https://{spec.endpoint}.test/score",
                            model=f"{model.name}:{model.version}", instance_type=spec.instance_type)
        self.endpoints[spec.endpoint] = endpoint
        return endpoint

    def get_endpoint(self, name):
        if name not in self.endpoints:
            raise NotFound(f"no endpoint named {name}; list them with %azml_status.")
        return self.endpoints[name]

    def list_endpoints(self):
        return list(self.endpoints.values())

    def delete_endpoint(self, name):
        self.endpoints.pop(name, None)

    def reply_to(self, messages, params: GenerationParams) -> str:
        last = messages[-1]["content"]
        system = [m["content"] for m in messages if m["role"] == "system"]
        return (f"**echo**: {last} (turns={len(messages)}, t={params.temperature:g}, top_p={params.top_p:g}, "
                f"max={params.max_new_tokens}, sample={params.do_sample}, system={system[0] if system else '-'})")

    def _check_chat(self, endpoint):
        self.get_endpoint(endpoint)
        if self.chat_failure is not None:
            failure, self.chat_failure = self.chat_failure, None
            raise failure

    def invoke(self, endpoint, request):
        self._check_chat(endpoint)
        data = request["input_data"]
        params = GenerationParams(**data["parameters"])
        self.calls.append(("invoke", endpoint, data["input_string"], params))
        return {"output": self.reply_to(data["input_string"], params)}

    def stream_chat(self, endpoint, messages, params):
        if not self.streams:
            raise NotImplementedError("this endpoint does not stream")
        self._check_chat(endpoint)
        self.calls.append(("stream_chat", endpoint, messages, params))
        text = self.reply_to(messages, params)
        # the contract (backends/base.py): the text pieces, then the finished Reply; this double counts
        # words as tokens and reports usage unless ``reports_usage`` is off
        tokens = len(text.split()) if self.reports_usage else None
        return iter([text[i:i + 7] for i in range(0, len(text), 7)]
                    + [Reply(text, "stop" if self.reports_usage else None, tokens and len(messages), tokens)])
