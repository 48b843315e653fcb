"""The on-disk shape of a local job, shared by the trainer (child) and the job control (parent).

``<home>/jobs/<name>/`` holds ``job.json`` (what to do: spec, effective parameters, data files,
model), ``status.json`` (what happened: state, steps, error, progress, pid), ``launch.json`` (the
pid and command line the parent started), ``train.log`` and ``output/``. Every JSON file is
replaced atomically, so a reader in another process never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

STEPS = ("validate data", "load model", "preprocess", "fine-tune", "save MLflow model")
TRAINER_MODULE = "azml_magics.backends.local.trainer"


def jobs_dir(home: Path | str) -> Path:
    return Path(home) / "jobs"


def job_dir(home: Path | str, name: str) -> Path:
    return jobs_dir(home) / name


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


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
