"""Deleting what we created: endpoints first (they bill by the hour), then jobs, then clusters.

Only what this workspace's state record lists is touched, and a record goes only once its resource
is gone, so an interrupted cleanup can be run again.
"""

from __future__ import annotations

from .backends.base import COMPUTE_DELETION, FINETUNING_JOBS, TERMINAL_STATES
from .errors import AzmlError, NotFound, SpecError
from .state import WorkspaceState


def delete_everything(backend, state: WorkspaceState) -> list[str]:
    """Delete every endpoint, cancel every running job and delete every cluster the record lists.

    One record that cannot be handled (a hand-edited name, a resource that refuses) does not stop the
    rest: everything else is deleted first, then one line names what was deleted and what was not.
    """
    removed: list[str] = []
    failed: list[str] = []

    def attempt(what: str, action) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported below, after the other records are done
            failed.append(f"{what} ({(str(exc).splitlines() or [type(exc).__name__])[0]})")

    def endpoint(name: str) -> None:
        backend.delete_endpoint(name)
        state.remove("endpoints", name)
        removed.append(f"endpoint {name}")

    def job(name: str) -> None:
        try:
            status = backend.status(name)
        except NotFound:
            return
        if status.state not in TERMINAL_STATES:
            status = backend.cancel(name)
            removed.append(f"job {name} (canceled)")
        state.update("jobs", name, state=status.state)

    def compute(name: str) -> None:
        backend.delete_compute(name)
        state.remove("computes", name)
        removed.append(f"compute {name}")

    for record in state.list("endpoints"):
        attempt(f"endpoint {record.name}", lambda: endpoint(record.name))
    for record in state.list("jobs"):
        attempt(f"job {record.name}", lambda: job(record.name))
    def subscription(name: str) -> None:
        backend.delete_subscription(name)
        state.remove("subscriptions", name)
        removed.append(f"marketplace subscription {name}")

    if FINETUNING_JOBS in backend.capabilities:  # after the jobs: a running one may still use it
        for record in state.list("subscriptions"):
            attempt(f"marketplace subscription {record.name}", lambda: subscription(record.name))
    if COMPUTE_DELETION in backend.capabilities:
        for record in state.list("computes"):
            attempt(f"compute {record.name}", lambda: compute(record.name))
    if failed:
        raise AzmlError(f"deleted {', '.join(removed) or 'nothing'}; NOT deleted: {'; '.join(failed)}. "
                        "Fix or remove those records (%azml_status lists them) and run %azml_delete --all again.")
    return removed


def delete_compute(backend, state: WorkspaceState, name: str) -> list[str]:
    """Delete cluster ``name`` (refused in one line on a backend without clusters)."""
    if COMPUTE_DELETION not in backend.capabilities:
        raise SpecError(f"the {backend.name} backend has no compute clusters to delete.")
    backend.delete_compute(name)
    state.remove("computes", name)
    return [f"compute {name}"]


def delete_endpoint(backend, state: WorkspaceState, name: str, *, exists: bool) -> list[str]:
    """Delete endpoint ``name``; one already gone only loses its record (an unknown name is an error)."""
    if not exists:
        if not state.remove("endpoints", name):
            raise NotFound(f"no endpoint named '{name}' in this workspace; %azml_status lists them.")
        return [f"record of endpoint {name} (it was already gone)"]
    backend.delete_endpoint(name)
    state.remove("endpoints", name)
    return [f"endpoint {name}"]
