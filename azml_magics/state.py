"""What this workspace created (jobs, models, endpoints, computes, data), kept on disk.

One small JSON file per workspace under ``<home>/state/``. It is written atomically (a temporary
file then ``os.replace``) so a crash never leaves half a record, and it is read again after a
kernel restart, so ``%azml_status`` and ``%azml_delete --all`` know what to clean up. It holds names
and ids only: never a key or a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("jobs", "models", "endpoints", "computes", "data")
_SECRET_WORDS = re.compile(r"(key|token|secret|password|credential)", re.I)
_lock = threading.RLock()


def _safe_name(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[-60:]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{readable}-{digest}.json"


@dataclass
class Record:
    kind: str
    name: str
    created: float = field(default_factory=time.time)
    info: dict = field(default_factory=dict)


class WorkspaceState:
    """The record of one workspace; every change is saved at once."""

    def __init__(self, home: Path | str, workspace_key: str):
        self.path = Path(home).expanduser() / "state" / _safe_name(workspace_key)
        self.workspace_key = workspace_key
        self._data = self._read()

    def _read(self) -> dict:
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if isinstance(data, dict):
                    for kind in KINDS:
                        data.setdefault(kind, {})
                    return data
            except (OSError, json.JSONDecodeError):
                broken = self.path.with_suffix(f".broken-{int(time.time())}")
                os.replace(self.path, broken)
        return {"workspace": self.workspace_key, **{k: {} for k in KINDS}}

    def reload(self) -> None:
        with _lock:
            self._data = self._read()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self._data, fh, indent=1, sort_keys=True, default=str)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def add(self, kind: str, name: str, **info) -> Record:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind}")
        for key in info:
            if _SECRET_WORDS.search(key):
                raise ValueError(f"refusing to store '{key}' in workspace state: secrets never go to disk here")
        with _lock:
            existing = self._data[kind].get(name, {})
            record = {"created": existing.get("created", time.time()), **existing.get("info", {}), **info}
            created = record.pop("created")
            self._data[kind][name] = {"created": created, "updated": time.time(), "info": record}
            self._write()
        return Record(kind, name, created, record)

    def update(self, kind: str, name: str, **info) -> None:
        with _lock:
            if name in self._data[kind]:
                self._data[kind][name]["info"].update(info)
                self._write()

    def remove(self, kind: str, name: str) -> bool:
        with _lock:
            found = self._data[kind].pop(name, None) is not None
            if found:
                self._write()
            return found

    def get(self, kind: str, name: str) -> Record | None:
        entry = self._data[kind].get(name)
        if entry is None:
            return None
        return Record(kind, name, entry["created"], dict(entry["info"]))

    def list(self, kind: str) -> list[Record]:
        items = [Record(kind, n, e["created"], dict(e["info"])) for n, e in self._data[kind].items()]
        return sorted(items, key=lambda r: r.created)

    def latest(self, kind: str) -> Record | None:
        """The record added (or added again) most recently: what 'the last one' means to a user."""
        entries = self._data[kind]
        if not entries:
            return None
        name = max(entries, key=lambda n: (entries[n].get("updated", entries[n]["created"]), entries[n]["created"]))
        return self.get(kind, name)

    def counts(self) -> dict[str, int]:
        return {kind: len(self._data[kind]) for kind in KINDS}

    def is_empty(self) -> bool:
        return not any(self.counts().values())
