"""Submit a fine-tune of the tiny model straight to a LocalBackend, the way the API does."""

from __future__ import annotations


def submit_tiny(backend, data, name: str | None = None, **parameters):
    """Submit a fine-tune of the tiny model the way the API does (spec -> merged parameters)."""
    from azml_magics.plan import FinetunePlan, merge_parameters
    from azml_magics.spec import finetune_from_dict

    raw = {"model": "azml-tiny-phi3", "parameters": parameters}
    if name:
        raw["name"] = name
    spec = finetune_from_dict(raw)
    info = backend.get_model(spec.model)
    effective = merge_parameters(spec.parameters, info.model_defaults)
    plan = FinetunePlan(spec, info, backend.check_compute(spec.compute, info), effective, data=data)
    return backend.submit(plan)


def wait_done(backend, job: str, timeout: float = 240):
    """Watch a job straight on a backend to its end through Session.watch (the one poll loop)."""
    from azml_magics.api import Session
    from azml_magics.state import WorkspaceState

    session = Session(home=backend.home, poll_interval=0.5)
    session.backend, session.workspace = backend, backend.connect({"home": str(backend.home)})
    session.state = WorkspaceState(session.home, session.workspace.key)
    return session.watch(job, timeout=timeout)
