"""Which model a registration, a deploy or an evaluation means: the last completed job, a registered
model by reference, or its base model.

Kept apart from api.Session (which calls these) because the rules are the backend's capabilities
read in one place: a backend with registered models resolves 'name:version' / 'name@label' itself,
the base model of a fine-tuned one is found through its ``azml.base_model`` lineage tag and is
either a registry model deployed as it is (Azure) or a folder of weights (local).
"""

from __future__ import annotations

import re

from .backends.base import LOCAL_WEIGHTS, REGISTERED_MODELS, REGISTRY_DEPLOY, ModelRef
from .errors import AzmlError, NotFound, SpecError
from .spec_values import split_model_ref
from .state import WorkspaceState

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,29}")


def check_version(version) -> None:
    """A ``--version`` for a registration, refused in one line before anything is registered."""
    if version is not None and not _VERSION.fullmatch(str(version)):
        raise SpecError(f"version {str(version)[:40]!r} is not valid: 1-30 letters, digits, '.', '_' or '-', "
                        "a letter or digit first (e.g. --version 3).", path="version")


def last_completed_job(backend, state: WorkspaceState) -> str:
    """The newest job of this workspace that completed: what %azml_register means with no job named
    (a canceled or failed job has no model)."""
    records = sorted(state.list("jobs"), key=lambda r: r.created, reverse=True)
    for record in records:
        try:
            if backend.status(record.name).state == "Completed":
                return record.name
        except AzmlError:
            continue
    if not records:
        raise NotFound("no job yet in this workspace; submit one with %%azml_finetune.")
    raise NotFound("no completed job in this workspace yet; wait for one (%azml_jobs) or name the job.")


def registered(backend, state: WorkspaceState, model: str | None = "last") -> ModelRef:
    """A registered model: 'name:version', 'name@latest', 'last' (registered here last), or 'base' /
    'base:REF' (the base model that one was fine-tuned from, where the backend can load it)."""
    if model and (model == "base" or model.startswith("base:")):
        return base(backend, state, model.partition(":")[2] or "last")
    if model in (None, "", "last"):
        latest = state.latest("models")
        if latest is None:
            raise NotFound("no model registered in this workspace yet; run %azml_register first.")
        model = latest.name
    name, version, label = split_model_ref(model)
    if REGISTERED_MODELS not in backend.capabilities:
        return ModelRef(name=name, version=version or "latest", id=model)
    return backend.get_registered_model(name, version=version, label=label)


def base(backend, state: WorkspaceState, model: str = "last") -> ModelRef:
    """The base model registered model ``model`` was fine-tuned from (its lineage tag): a ref whose id is
    the folder to load or serve (local), or the registry model, deployed as it is (Azure)."""
    tuned = registered(backend, state, model)
    base_id = tuned.tags.get("azml.base_model")
    if not base_id:
        raise NotFound(f"model {tuned.name}:{tuned.version} has no base-model tag; name the base model itself.")
    if REGISTRY_DEPLOY in backend.capabilities:
        ref = backend.registry_model(base_id)
    elif LOCAL_WEIGHTS in backend.capabilities:
        ref = ModelRef(name=base_id.rstrip("/").split("/")[-1], version="base", id=backend.model_folder(base_id))
    else:
        raise SpecError(f"the {backend.name} backend cannot serve base model {base_id} from here; deploy it by name.")
    ref.tags["azml.base_of"] = f"{tuned.name}:{tuned.version}"
    return ref
