"""%azml_status: what every workspace's saved state says we made, and whether it still runs.

It reads the state files under ``<home>/state/`` and needs no connection, so a fresh kernel shows the
endpoints and jobs a previous one left running. Where a check is cheap and needs no credentials (the
session's own backend, or the local backend, which only reads files and probes 127.0.0.1), each job
and endpoint is asked for its live state; an Azure workspace the session is not connected to is shown
as saved, with how to check it. Azure endpoints and clusters get the billing note.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .backends.base import TERMINAL_STATES
from .display import Table
from .state import KINDS, WorkspaceState

KIND_LABELS = {"jobs": "job", "models": "model", "endpoints": "endpoint", "computes": "compute", "data": "data",
               "subscriptions": "marketplace subscription"}
UP_STATES = ("Succeeded", "Unhealthy", "Creating", "Updating")  # an endpoint in these exists (and bills on Azure)


@dataclass
class Item:
    """One record: its saved details, and (when checked) its live state and whether it still runs."""

    kind: str
    name: str
    created: float
    details: dict
    live: str | None = None  # the backend's answer now; None when not checked
    running: bool | None = None  # None: unknown (not checked or not a running kind)


@dataclass
class WorkspaceOverview:
    backend: str
    key: str
    items: list[Item] = field(default_factory=list)
    checked: bool = False
    note: str = ""  # why it was not checked, and how to

    @property
    def name(self) -> str:
        return self.key.split(":", 1)[1] if ":" in self.key else self.key


def state_files(home: Path) -> list[Path]:
    folder = Path(home) / "state"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def saved_workspaces(home: Path) -> list[WorkspaceState]:
    """Every workspace state under ``home`` (read only; a broken file is skipped, not moved)."""
    found = []
    for path in state_files(home):
        try:
            key = json.loads(path.read_text()).get("workspace")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(key, str) and key:
            found.append(WorkspaceState(home, key))
    return found


def overview(session, check: bool = True) -> list[WorkspaceOverview]:
    """Each saved workspace (the connected one first) with its records, checked live where possible."""
    current = session.workspace.key if session.workspace is not None else None
    if session.state is not None:
        session.state.reload()
    out = []
    for state in saved_workspaces(session.home):
        backend = state.workspace_key.split(":", 1)[0]
        ws = WorkspaceOverview(backend, state.workspace_key)
        for kind in KINDS:
            for record in state.list(kind):
                ws.items.append(Item(KIND_LABELS[kind], record.name, record.created, record.info))
        if check and ws.items:
            _check(session, ws, state, connected=state.workspace_key == current)
        out.append(ws)
    out.sort(key=lambda w: w.key != current)
    return out


def _check(session, ws: WorkspaceOverview, state: WorkspaceState, connected: bool) -> None:
    backend = session.backend if connected else None
    if backend is None and ws.backend == "local":
        from . import backends

        try:
            backend = backends.load("local")
            backend.connect({"home": ws.name})
        except Exception as exc:  # noqa: BLE001 - the saved rows are still worth showing
            ws.note = f"not checked: {exc}"
            return
    if backend is None:
        ws.note = f"saved state, not checked live: run %azml_connect --backend {ws.backend} to check it"
        return
    ws.checked = True
    for item in ws.items:
        try:
            if item.kind == "job":
                item.live = backend.status(item.name).state
                item.running = item.live not in TERMINAL_STATES
                state.update("jobs", item.name, state=item.live)  # the record follows what we saw
            elif item.kind == "endpoint":
                item.live = backend.get_endpoint(item.name).state
                item.running = item.live in UP_STATES
        except Exception as exc:  # noqa: BLE001 - one gone resource must not hide the others
            item.live = "gone" if type(exc).__name__ == "NotFound" else f"unknown ({type(exc).__name__})"
            item.running = False if item.live == "gone" else None


def running_label(item: Item) -> str:
    if item.running is None:
        return "?" if item.kind in ("job", "endpoint") else ""
    return "yes" if item.running else "no"


def overview_tables(workspaces: list[WorkspaceOverview], connected_key: str | None) -> list[Table]:
    """One table per workspace: kind, name, created, saved state, live state, still running, details."""
    tables = []
    for ws in workspaces:
        rows = []
        for item in ws.items:
            details = _short_details(item)
            rows.append([item.kind, item.name, _when(item.created), item.details.get("state", ""),
                         item.live or "", running_label(item), details])
        notes = [ws.note] if ws.note else []
        if ws.backend == "azure":
            notes += billing_notes(ws)
        if not rows:
            notes.append("nothing recorded in this workspace")
        mark = " (connected)" if ws.key == connected_key else ""
        tables.append(Table(["kind", "name", "created", "saved state", "live state", "running", "details"], rows,
                            title=f"{ws.backend}: {ws.name}{mark}", notes=notes))
    return tables


DETAIL_SKIP = {"state", "parameters", "url", "fingerprint", "train", "test", "validation"}  # long; %azml_jobs has them


def _short_details(item: Item, width: int = 48) -> str:
    """The record's short fields, each cut to ``width``: a status table must stay readable."""
    parts = []
    for key, value in item.details.items():
        if key in DETAIL_SKIP or value in (None, "") or isinstance(value, (dict, list)) or value == item.name:
            continue
        text = str(value)
        parts.append(f"{key}={text if len(text) <= width else text[:width - 1] + '…'}")
    return ", ".join(parts)


def billing_notes(ws: WorkspaceOverview) -> list[str]:
    endpoints = [i for i in ws.items if i.kind == "endpoint" and i.running is not False]
    computes = [i for i in ws.items if i.kind == "compute"]
    notes = []
    if endpoints:
        names = ", ".join(i.name for i in endpoints)
        notes.append(f"Billing: an Azure online endpoint bills for its instances while it is deployed ({names}); "
                     "%azml_delete NAME or %azml_delete --all stops it.")
    if computes:
        notes.append("Billing: a compute cluster bills while nodes run (min_instances 0 scales down after its idle "
                     "time); %azml_delete --compute NAME removes it.")
    return notes


def _when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(ts))) if ts else ""
