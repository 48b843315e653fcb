"""The on-disk shape of a local job, shared by the trainer (child) and the job control (parent).

``<home>/jobs/<name>/`` holds ``job.json`` (what to do: a :class:`JobRecord` with the spec, the
effective parameters, the data files and the model), ``status.json`` (what happened: state, steps,
error, progress, pid), ``launch.json`` (the pid and command line the parent started), ``train.log``
and ``output/``. Every JSON file is replaced atomically (:func:`azml_magics.files.write_json`), so
a reader in another process never sees half a file.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import SpecError
from ...files import read_json, write_json
from ..base import DataFiles

__all__ = ["STEPS", "TRAINER_MODULE", "JobModel", "JobRecord", "check_job_name", "jobs_dir", "job_dir",
           "new_status", "read_json", "write_json"]

STEPS = ("validate data", "load model", "preprocess", "fine-tune", "save MLflow model")
TRAINER_MODULE = "azml_magics.backends.local.trainer"
CANCEL_FILE = "cancel.json"  # written by cancel before it signals: the trainer's SIGTERM was a cancel


def jobs_dir(home: Path | str) -> Path:
    return Path(home) / "jobs"


NAME_RULE = "letters, digits, '-', '_' and '.', a letter or digit first, at most 255 characters"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def check_job_name(name) -> str:
    """``name`` if it is a plain job name; one line otherwise. Why: it becomes a folder under the home,
    so '../x' or '/etc' must never reach the file system (checked at every use, not only at creation)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SpecError(f"job name {str(name)[:80]!r} is not valid: {NAME_RULE}.", path="name")
    return name


def job_dir(home: Path | str, name: str) -> Path:
    return jobs_dir(home) / check_job_name(name)


@dataclass
class JobModel:
    """The model a job trains: what the spec said, and what it resolved to (tiny, hub or local folder)."""

    spec: str
    kind: str
    ref: str
    name: str


@dataclass
class JobRecord:
    """``job.json``: what the trainer is to do. ``LocalBackend.submit`` writes it, the trainer reads it.

    Typed so that the parent and the child process (and ``register``) agree on every field.
    """

    name: str
    home: str
    spec: dict  # FinetuneSpec.to_dict(), for the record
    parameters: dict  # the effective pipeline parameters
    data: DataFiles
    model: JobModel
    experiment: str
    experiment_id: str
    ignored: dict = field(default_factory=dict)  # parameter -> why it has no meaning locally
    launch: dict = field(default_factory=dict)  # device.LaunchPlan: device, precision, processes
    estimate: dict = field(default_factory=dict)  # the plan's estimate (estimate.Estimate), to set beside measured
    submitted: float = field(default_factory=time.time)

    FILE = "job.json"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "JobRecord":
        data = dict(data)
        data["data"] = DataFiles(**data["data"])
        data["model"] = JobModel(**data["model"])
        return cls(**data)

    def write(self, folder: Path | str) -> None:
        write_json(Path(folder) / self.FILE, self.to_json())

    @classmethod
    def read(cls, folder: Path | str) -> "JobRecord":
        return cls.from_json(read_json(Path(folder) / cls.FILE))


def new_status(name: str) -> dict:
    return {
        "name": name,
        "state": "Queued",
        "steps": [{"name": s, "state": "NotStarted", "started": None, "ended": None, "error": None} for s in STEPS],
        "created": time.time(),
        "started": None,
        "ended": None,
        "error": None,
        "progress": None,
        "pid": None,
        "cmdline": None,
        "outputs": {},
    }
