"""What is compared: models loaded in this process, or endpoints, named the way the other magics name them.

A reference is ``endpoint:NAME``; ``base`` (the base model of the last registered model) or
``base:REF``; a registered model (``last``, ``name:version``, ``name@latest``); a base model by name
(``azml-tiny-phi3``, a hub id, a folder: where the backend can load weights); or the bare name of an
endpoint this workspace deployed. The default is ``base`` then ``last``: the delta is fine-tuned minus base.
Where the backend cannot load weights (Azure), a model is compared through the endpoint it was deployed to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..backends.base import LOCAL_WEIGHTS, ModelRef
from ..errors import AzmlError, NotFound, SpecError

DEFAULT = ("base", "last")


@dataclass
class Candidate:
    """One side of the comparison. ``folder`` set: generated in-process; ``endpoint`` set: through it."""

    label: str
    kind: str  # "model" or "endpoint"
    folder: str | None = None
    endpoint: str | None = None
    model: ModelRef | None = None
    job: str | None = None

    @property
    def key(self) -> str:
        """The label as an MLflow metric-name part."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_") or "candidate"


def resolve(session, refs: list[str] | tuple[str, ...] | None) -> list[Candidate]:
    """The candidates for ``refs`` (default: base, last); one-line errors before anything is generated."""
    refs = list(refs or DEFAULT)
    if len(refs) < 2:
        raise SpecError("name at least two candidates to compare (default: base last), e.g. base last.")
    found = [_one(session, ref) for ref in refs]
    labels = [c.label for c in found]
    if len(set(labels)) != len(labels):
        raise SpecError(f"the candidates name the same thing twice ({', '.join(refs)}); name different ones.")
    return found


def _one(session, ref: str) -> Candidate:
    backend = session.require()
    loadable = LOCAL_WEIGHTS in backend.capabilities
    if ref.startswith("endpoint:"):
        return _endpoint(session, ref.partition(":")[2])
    if ref == "base" or ref.startswith("base:"):
        base = session.registered_model(ref)
        if not loadable:
            return _deployed(session, f"base {base.name}", base, "--base ")
        return Candidate(f"base {base.name}", "model", folder=base.id, model=base)
    state = session.state
    if state is not None and state.get("endpoints", ref) is not None:
        return _endpoint(session, ref)
    try:
        model = session.registered_model(ref)
    except NotFound:
        if not loadable:
            raise
        try:  # a base model by name
            return Candidate(ref, "model", folder=backend.model_folder(ref))
        except AzmlError as exc:
            raise NotFound(f"'{ref}' is no registered model, endpoint or loadable model here ({exc})") from None
    label = f"{model.name}:{model.version}"
    if not loadable:
        return _deployed(session, label, model, f"--model {label} " if ref not in ("last", "") else "")
    return Candidate(label, "model", folder=backend.model_folder(model.id), model=model, job=model.job)


def _deployed(session, label: str, model: ModelRef, how: str) -> Candidate:
    """A model this backend cannot load, compared through the newest endpoint this workspace deployed it to."""
    wanted = f"{model.name}:{model.version}"
    records = sorted(session.state.list("endpoints"), key=lambda r: r.created, reverse=True)
    for record in records:
        if record.info.get("model") == wanted and session.endpoint_exists(record.name):
            return Candidate(label, "endpoint", endpoint=record.name, model=model, job=model.job)
    backend = session.require().name
    raise SpecError(f"the {backend} backend compares models through their endpoints and {wanted} has none here; "
                    f"deploy it first (%azml_deploy {how}--endpoint NAME), or name endpoints: %azml_eval endpoint:A endpoint:B")


def _endpoint(session, name: str) -> Candidate:
    if not name or not session.endpoint_exists(name):
        raise NotFound(f"no endpoint named '{name}' (%azml_status lists this workspace's endpoints).")
    return Candidate(f"endpoint {name}", "endpoint", endpoint=name)
