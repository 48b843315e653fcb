"""MLflow on the local backend: the tracking store, the produced model and the model registry.

One SQLite database per home (``<home>/mlflow.db``; current MLflow refuses file stores and the
registry needs a database) with artifacts under ``<home>/mlartifacts``. Registered versions carry
lineage tags (job, base model, data fingerprint, effective parameters) and are never overwritten:
registering the same job again returns the version it already has.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from ...defaults import MODEL_NAME_SUFFIX
from ...errors import AzmlError, NotFound
from ...waits import wait
from ..base import ModelRef
from . import jobfiles

LOADER_MODULE = "azml_magics.backends.local.pyfunc"
HF_FOLDER = "hf_model"
_init_lock = threading.Lock()
_ready: set[str] = set()


def tracking_uri(home: Path | str) -> str:
    """The store's SQLAlchemy URL, the path percent-quoted: a home named 'a?b', 'a#b', 'a%b' or 'a b'
    must not cut the URL short (the database would land elsewhere, or MLflow retries for minutes)."""
    return "sqlite:///" + quote(str(Path(home).resolve() / "mlflow.db"), safe="/")


def artifact_root(home: Path | str) -> Path:
    return Path(home).resolve() / "mlartifacts"


def client(home: Path | str):
    """An MlflowClient on this home's store, creating the database on first use (once per process)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(home)
    with _init_lock:
        if uri not in _ready:
            Path(home).mkdir(parents=True, exist_ok=True)
            artifact_root(home).mkdir(parents=True, exist_ok=True)
            quiet = logging.getLogger("mlflow.store.db.utils")
            level, quiet.level = quiet.level, logging.WARNING  # "Creating initial MLflow database tables..."
            try:
                MlflowClient(uri, registry_uri=uri).search_experiments(max_results=1)  # runs the migrations
            finally:
                quiet.setLevel(level)
            _ready.add(uri)
    return MlflowClient(uri, registry_uri=uri)


def ensure_experiment(home: Path | str, name: str) -> str:
    """The experiment id for ``name``, with its artifacts under ``<home>/mlartifacts/<name>``."""
    mc = client(home)
    exp = mc.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mc.create_experiment(name, artifact_location=(artifact_root(home) / name).as_uri())
    except Exception:  # created meanwhile by another process
        exp = mc.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def log_hf_model(home: Path | str, run_id: str, hf_dir: Path) -> dict:
    """Log ``hf_dir`` as the run's MLflow (pyfunc) model; return its URI, id and artifact location."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(home))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            loader_module=LOADER_MODULE,
            data_path=str(hf_dir),
            pip_requirements=["azml_magics[local]", "transformers", "torch"],
            metadata={"azml_magics": {"format": "hf_folder", "folder": Path(hf_dir).name}},
        )
    location = client(home).get_logged_model(info.model_id).artifact_location
    return {"model_uri": info.model_uri, "model_id": info.model_id, "model_artifacts": location}


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    raise AzmlError(f"model artifacts at {uri} are not on this machine; the local backend reads file stores only.")


def model_artifacts(home: Path | str, model_uri: str) -> Path:
    """The local folder of an MLflow model URI (``models:/name/version``, ``models:/<id>``, ``runs:/``)."""
    mc = client(home)
    if model_uri.startswith("models:/"):
        rest = model_uri[len("models:/"):].strip("/")
        if "/" in rest:
            name, version = rest.split("/", 1)
            return _local_path(mc.get_model_version_download_uri(name, version))
        return _local_path(mc.get_logged_model(rest).artifact_location)
    if model_uri.startswith("runs:/"):
        run_id, _, sub = model_uri[len("runs:/"):].partition("/")
        return _local_path(mc.get_run(run_id).info.artifact_uri) / sub
    return _local_path(model_uri)


def hf_model_dir(model_uri_or_path: str | Path, home: Path | str | None = None) -> Path:
    """The plain Hugging Face folder (``from_pretrained``-ready) inside a produced or registered model.

    Accepts an MLflow model folder, a Hugging Face folder, or (with ``home``) an MLflow model URI.
    """
    text = str(model_uri_or_path)
    if "://" in text or text.startswith(("models:/", "runs:/")):
        if home is None:
            raise ValueError("hf_model_dir needs home= to resolve an MLflow URI")
        folder = model_artifacts(home, text)
    else:
        folder = Path(text).expanduser()
    if (folder / "MLmodel").exists():
        import yaml

        meta = yaml.safe_load((folder / "MLmodel").read_text()) or {}
        data = ((meta.get("flavors") or {}).get("python_function") or {}).get("data")
        folder = folder / (data or HF_FOLDER)
    if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
        raise NotFound(f"no Hugging Face model in {folder}; is this a model the local backend produced?")
    return folder


def is_adapter_folder(folder: Path) -> bool:
    """A PEFT adapter folder (no weights of its own): what an unmerged LoRA fine-tune registers. The
    kernel asks it to choose how to serve; the server process, to accept a folder without config.json."""
    folder = Path(folder)
    return (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file()


# ----------------------------------------------------------------------------- registry
def default_name(base_model: str) -> str:
    """The notebook's naming: ``<model>-ultrachat-200k``."""
    return f"{base_model.rstrip('/').split('/')[-1]}{MODEL_NAME_SUFFIX}"


def _ref(mv, requested: str | None = None) -> ModelRef:
    tags = dict(mv.tags or {})
    return ModelRef(
        name=mv.name,
        version=tags.get("azml.version") or str(mv.version),
        id=f"models:/{mv.name}/{mv.version}",
        job=tags.get("azml.job"),
        tags=tags,
    )


def _versions(mc, name: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        return list(mc.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        return []


def register(home: Path | str, job: str, name: str | None = None, version: str | None = None) -> ModelRef:
    """Register the model job ``job`` produced; same job again -> the version it already has.

    Held under the home's registry lock: two kernels registering one job at once get one version."""
    from ...state import home_lock

    with home_lock(home, "registry"), wait(f"Registering the model of {job} in the MLflow registry"):
        return _register(home, job, name, version)


def _register(home: Path | str, job: str, name: str | None, version: str | None) -> ModelRef:
    from mlflow.exceptions import MlflowException

    folder = jobfiles.job_dir(home, job)
    status = jobfiles.read_json(folder / "status.json")
    if not status:
        raise NotFound(f"no local job named '{job}'; list jobs with %azml_jobs.")
    if status.get("state") != "Completed" or not status.get("outputs", {}).get("model_uri"):
        raise AzmlError(
            f"job '{job}' is {status.get('state')} and has no model to register"
            + ("; wait for it to complete (%azml_jobs attach " + job + ")."
               if status.get("state") not in ("Failed", "Canceled") else "; register a completed job (%azml_jobs).")
        )
    record = jobfiles.JobRecord.read(folder)
    base = record.model.name or "model"
    name = name or default_name(base)
    if not _valid_name(name):
        raise AzmlError(f"model name '{name}' is not valid: letters, digits, '-', '_' and '.' only, at most 255 characters.")
    mc = client(home)
    existing = _versions(mc, name)
    for mv in existing:
        if (mv.tags or {}).get("azml.job") == job:
            had = (mv.tags or {}).get("azml.version", str(mv.version))
            if version is not None and str(version) != had:
                raise AzmlError(
                    f"job '{job}' is already registered as {name}:{had}; a job is registered once per name "
                    "(no duplicates): use that version, or pass another --name."
                )
            return _ref(mv)
    if version is not None:
        version = str(version)
        for mv in existing:
            if (mv.tags or {}).get("azml.version") == version or (str(mv.version) == version and "azml.version" not in (mv.tags or {})):
                raise AzmlError(
                    f"model {name} already has a version {version} (from job {(mv.tags or {}).get('azml.job')}); "
                    "versions are never overwritten: pick another version or leave it out."
                )
    tags = {
        "azml.job": job,
        "azml.base_model": record.model.ref or base,
        "azml.data_fingerprint": record.data.fingerprint,
        "azml.parameters": json.dumps(record.parameters, sort_keys=True, default=str)[:5000],
        "azml.backend": "local",
    }
    if version is not None:
        tags["azml.version"] = version
    try:
        mc.create_registered_model(name, tags={"azml.task": "chat-completion"})
    except MlflowException:
        pass  # exists already
    run_id = status.get("run_id")
    outputs = status["outputs"]
    # The artifact location, not the models:/ URI: MLflow resolves that one against the global store.
    mv = mc.create_model_version(
        name, source=outputs.get("model_artifacts") or outputs["model_uri"], run_id=run_id, tags=tags,
        model_id=outputs.get("model_id"),
        description=f"fine-tuned from {tags['azml.base_model']} by local job {job}",
    )
    return _ref(mv)


def _valid_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", name))


def resolve_model(home: Path | str, ref: str) -> ModelRef:
    """``name``, ``name:version``, ``name@latest`` or ``models:/name/version`` -> a registered ModelRef."""
    mc = client(home)
    text = ref[len("models:/"):].replace("/", ":", 1) if ref.startswith("models:/") else ref
    if "@" in text:
        name, label = text.split("@", 1)
        version = None if label == "latest" else label
    else:
        name, _, version = text.partition(":")
        version = version or None
    versions = _versions(mc, name)
    if not versions:
        raise NotFound(f"no registered model '{name}' in this workspace; register one with %azml_register.")
    if version is None:
        return _ref(max(versions, key=lambda mv: int(mv.version)))
    for mv in versions:
        if (mv.tags or {}).get("azml.version") == version or str(mv.version) == version:
            return _ref(mv)
    known = ", ".join(_ref(mv).version for mv in versions)
    raise NotFound(f"model '{name}' has no version {version}; versions: {known}.")
