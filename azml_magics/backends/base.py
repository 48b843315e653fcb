"""The Backend protocol and the plain dataclasses backends return.

Backends (``azure``, ``local``) are plugins found through the entry-point group
``azml_magics.backends``. The API, the magics and the UI only ever see these dataclasses, never an
SDK object, so the UI works the same whatever does the work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol, runtime_checkable

# Job states, shared by both backends (Azure's own names).
NOT_STARTED = "NotStarted"
QUEUED = "Queued"
PREPARING = "Preparing"
RUNNING = "Running"
FINALIZING = "Finalizing"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"
TERMINAL_STATES = frozenset({COMPLETED, FAILED, CANCELED})


@dataclass
class Workspace:
    backend: str
    name: str
    key: str  # identifies the workspace in the state store
    location: str = ""
    registry: str | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelInfo:
    name: str
    version: str
    id: str
    tasks: list[str] = field(default_factory=list)
    finetune_allow_list: list[str] | None = None
    inference_allow_list: list[str] | None = None
    model_defaults: dict[str, object] = field(default_factory=dict)
    archived: bool = False
    deprecated: str | None = None  # a date or a note
    description: str = ""
    supports_system_role: bool = True
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ComputeInfo:
    name: str
    size: str
    gpus_per_node: int = 1
    state: str = "Succeeded"
    created: bool = False


@dataclass
class JobStep:
    name: str
    state: str = NOT_STARTED
    started: float | None = None
    ended: float | None = None
    error: str | None = None


@dataclass
class JobRef:
    name: str
    backend: str
    display_name: str = ""
    experiment: str = ""
    url: str | None = None


@dataclass
class JobStatus:
    name: str
    state: str
    steps: list[JobStep] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    progress: float | None = None  # 0..1 where known
    url: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass
class LogChunk:
    lines: list[str]
    cursor: object  # opaque; pass back to get only newer lines
    step: str | None = None


@dataclass
class MetricPoint:
    step: int
    value: float
    timestamp: float | None = None


@dataclass
class ModelRef:
    name: str
    version: str
    id: str
    job: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Endpoint:
    name: str
    backend: str
    scoring_uri: str
    state: str = "Succeeded"
    deployment: str = "demo"
    model: str | None = None
    instance_type: str | None = None
    instance_count: int = 1
    openai_base_url: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DataFiles:
    """Training data ready for a backend: checked JSON-lines files on local disk."""

    train: str
    test: str | None = None
    validation: str | None = None
    fingerprint: str = ""  # sha256 over the files' bytes: names uploads, tags registered models
    rows: dict[str, int] = field(default_factory=dict)  # split -> usable rows


@dataclass
class ChatParams:
    temperature: float = 0.6
    top_p: float = 0.9
    do_sample: bool = True
    max_new_tokens: int = 200


@runtime_checkable
class Backend(Protocol):
    """What a backend does. Every call takes and returns the dataclasses above."""

    name: str

    def connect(self, options: dict) -> Workspace: ...

    def get_model(self, name: str, version: str | None = None, label: str | None = "latest") -> ModelInfo: ...

    def list_models(self, task: str = "chat-completion") -> list[ModelInfo]: ...

    def component_inputs(self, version: str | None = None) -> set[str]: ...

    def check_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        """Validate the compute request (allow list, size) without creating anything."""
        ...

    def ensure_compute(self, spec, model: ModelInfo) -> ComputeInfo: ...

    def ignored_parameters(self) -> dict[str, str]:
        """Pipeline inputs this backend has no use for, with why (shown, never silently dropped)."""
        ...

    def submit(self, spec, effective, data: DataFiles, model: ModelInfo, compute: ComputeInfo) -> JobRef:
        """Start the fine-tune; ``spec`` is a FinetuneSpec, ``effective`` its EffectiveParameters."""
        ...

    def status(self, job: str) -> JobStatus: ...

    def logs(self, job: str, cursor: object = None) -> LogChunk: ...

    def metrics(self, job: str) -> dict[str, list[MetricPoint]]: ...

    def cancel(self, job: str) -> JobStatus: ...

    def list_jobs(self) -> list[JobStatus]: ...

    def register(self, job: str, name: str | None = None, version: str | None = None) -> ModelRef: ...

    def deploy(self, model: ModelRef, spec) -> Endpoint:
        """``spec`` is a DeploySpec; blocks until the endpoint answers or failed."""
        ...

    def get_endpoint(self, name: str) -> Endpoint: ...

    def list_endpoints(self) -> list[Endpoint]: ...

    def invoke(self, endpoint: str, request: dict) -> dict: ...

    def stream_chat(self, endpoint: str, messages: list[dict], params: ChatParams) -> Iterator[str]: ...

    def delete_endpoint(self, name: str) -> None: ...
