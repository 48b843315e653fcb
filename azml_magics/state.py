"""What this workspace created (jobs, models, endpoints, computes, data), kept on disk.

One small JSON file per workspace under ``<home>/state/``, shared by every kernel on this home. Why
it is done this way: several notebooks (processes) use one home at once, so each change takes an
inter-process lock (``<home>/locks/``, :mod:`filelock`), reads the file again, changes the one record
and writes it back atomically (:func:`azml_magics.files.write_json`); nobody writes a stale copy over
another kernel's record. Reads always read the file, so ``%azml_status`` and ``%azml_delete --all``
see what every kernel made. A damaged file (not JSON, not UTF-8, the wrong shape) is set aside under
a name of its own (never overwritten), reported in one line, and the record is rebuilt from what the
backend still has (``recover``), so cleanup still finds what runs. It holds names and ids only:
never a key or a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import AzmlError
from .files import write_json

KINDS = ("jobs", "models", "endpoints", "computes", "data", "subscriptions")
_SECRET_WORDS = re.compile(r"(key|token|secret|password|credential)", re.I)
_thread_lock = threading.RLock()  # threads of this process; the file lock covers other processes
_file_locks: dict[str, object] = {}
LOCK_TIMEOUT = 60.0

# recover() -> {kind: {name: info}}: what the backend still has, to rebuild a damaged record
Recover = Callable[[], dict]


def _safe_name(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[-60:]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{readable}-{digest}.json"


def record_id(home: Path | str, workspace_key: str) -> str:
    """A short stable id of one home's record of one workspace: what a backend tags its resources with,
    so a damaged record can be rebuilt from them. The home is part of it because a colleague's notebook
    on the same workspace (another home) must not have its resources counted as ours. A hash of names
    only: nothing secret."""
    text = f"{Path(home).expanduser().resolve()}\n{workspace_key}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def locks_dir(home: Path | str) -> Path:
    return Path(home).expanduser() / "locks"


@contextmanager
def home_lock(home: Path | str, name: str, timeout: float = LOCK_TIMEOUT):
    """Hold the inter-process lock ``<home>/locks/<name>.lock`` (and this process's thread lock).

    Used for every state change, for registering a job's model and for deploying an endpoint name, so
    two kernels doing the same thing at once are served one after the other.
    """
    import filelock

    path = locks_dir(home) / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _thread_lock:
        lock = _file_locks.get(str(path))
        if lock is None:
            lock = _file_locks[str(path)] = filelock.FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise AzmlError(f"another kernel holds {path} for over {timeout:g} s; wait for it to finish, "
                        "or delete that file if no other notebook uses this home.") from None
    try:
        yield
    finally:
        lock.release()


@dataclass
class Record:
    kind: str
    name: str
    created: float = field(default_factory=time.time)
    info: dict = field(default_factory=dict)


def _shape_problem(data) -> str | None:
    """Why ``data`` is not a state record, or None."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not an object"
    for kind in KINDS:
        entries = data.get(kind, {})
        if not isinstance(entries, dict):
            return f"'{kind}' is a {type(entries).__name__}, not an object"
        for name, entry in entries.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("created"), (int, float))
                    and isinstance(entry.get("info", {}), dict)):
                return f"the entry {kind}.{name} has the wrong shape"
    return None


class WorkspaceState:
    """The record of one workspace; every change is a locked read-modify-write of the file."""

    def __init__(self, home: Path | str, workspace_key: str, recover: Recover | None = None):
        self.home = Path(home).expanduser()
        self.path = self.home / "state" / _safe_name(workspace_key)
        self.workspace_key = workspace_key
        self.recover = recover
        self.problems: list[str] = []  # one line each, not shown yet (take_problems)
        self._lock_name = "state-" + self.path.stem
        self._data = self._load()

    # ------------------------------------------------------------------ disk
    @contextmanager
    def _locked(self):
        with home_lock(self.home, self._lock_name):
            yield

    def _empty(self) -> dict:
        return {"workspace": self.workspace_key, **{k: {} for k in KINDS}}

    def _load(self) -> dict:
        """The file's content, read under the lock; a damaged file is set aside and rebuilt."""
        with self._locked():
            data, problem = self._read_file()
            if problem is None:
                return data
            kept = self._set_aside()
            data = self._empty()
            recovered = self._recovered(data)
            self.problems.append(
                f"the state file {self.path} was damaged ({problem}); kept it as {kept.name} and rebuilt the "
                f"record from what the backend still has ({recovered}); check it with %azml_status."
            )
            self._write(data)
            return data

    def _read_file(self) -> tuple[dict, str | None]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty(), None
        except OSError as exc:
            raise AzmlError(f"cannot read the state file {self.path} ({exc.strerror}); "
                            "make it a file this kernel can read and write (check its permissions).") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return {}, "it is not UTF-8 text"
        except json.JSONDecodeError as exc:
            return {}, f"not valid JSON: {exc.msg} at line {exc.lineno}"
        except RecursionError:
            return {}, "nested too deeply"
        problem = _shape_problem(data)
        if problem is not None:
            return {}, problem
        for kind in KINDS:
            data.setdefault(kind, {})
            for entry in data[kind].values():
                entry.setdefault("info", {})
        return data, None

    def _set_aside(self) -> Path:
        """Move the damaged file to a name nobody has used (a second damage never overwrites the first)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            kept = self.path.with_name(f"{self.path.stem}.broken-{stamp}-{n}{self.path.suffix}")
            if not kept.exists():
                os.replace(self.path, kept)
                return kept
        raise AzmlError(f"too many damaged copies of {self.path} in {self.path.parent}; remove old ones.")

    def _recovered(self, data: dict) -> str:
        if self.recover is None:
            return "nothing to ask"
        try:
            found = self.recover() or {}
        except Exception as exc:  # noqa: BLE001 - the line says what could not be found again
            return f"the backend could not be asked: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        now = time.time()
        counts = []
        for kind, entries in found.items():
            for name, info in entries.items():
                data[kind][name] = {"created": now, "updated": now, "info": {**info, "recovered": True}}
            if entries:
                counts.append(f"{len(entries)} {kind}")
        return "found again: " + (", ".join(counts) if counts else "nothing")

    def _write(self, data: dict) -> None:
        write_json(self.path, data, sort_keys=True)

    @contextmanager
    def _change(self):
        """Lock, read the file as it is now, let the caller change it, write it back."""
        with self._locked():
            data = self._load_locked()
            yield data
            self._write(data)
            self._data = data

    def _load_locked(self) -> dict:
        data, problem = self._read_file()
        if problem is None:
            return data
        # damaged since we opened it: the same handling, under the lock we hold (it is re-entrant)
        return self._load()

    def _fresh(self) -> dict:
        """The record as the file has it now (other kernels' changes included)."""
        with _thread_lock:
            data, problem = self._read_file()
            self._data = data if problem is None else self._load()
            return self._data

    def take_problems(self) -> list[str]:
        """The one-line reports not shown yet (a damaged file found and set aside)."""
        out, self.problems = self.problems, []
        return out

    def reload(self) -> None:
        self._fresh()

    # ------------------------------------------------------------------ changes
    def add(self, kind: str, name: str, **info) -> Record:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind}")
        for key in info:
            if _SECRET_WORDS.search(key):
                raise ValueError(f"refusing to store '{key}' in workspace state: secrets never go to disk here")
        with self._change() as data:
            existing = data[kind].get(name, {})
            record = {"created": existing.get("created", time.time()), **existing.get("info", {}), **info}
            created = record.pop("created")
            data[kind][name] = {"created": created, "updated": time.time(), "info": record}
        return Record(kind, name, created, record)

    def update(self, kind: str, name: str, **info) -> None:
        with self._change() as data:
            if name in data[kind]:
                data[kind][name]["info"].update(info)

    def remove(self, kind: str, name: str) -> bool:
        with self._change() as data:
            return data[kind].pop(name, None) is not None

    # ------------------------------------------------------------------ reads (always from the file)
    def get(self, kind: str, name: str) -> Record | None:
        entry = self._fresh()[kind].get(name)
        if entry is None:
            return None
        return Record(kind, name, entry["created"], dict(entry["info"]))

    def list(self, kind: str) -> list[Record]:
        items = [Record(kind, n, e["created"], dict(e["info"])) for n, e in self._fresh()[kind].items()]
        return sorted(items, key=lambda r: r.created)

    def latest(self, kind: str) -> Record | None:
        """The record added (or added again) most recently: what 'the last one' means to a user."""
        entries = self._fresh()[kind]
        if not entries:
            return None
        name = max(entries, key=lambda n: (entries[n].get("updated", entries[n]["created"]), entries[n]["created"]))
        entry = entries[name]
        return Record(kind, name, entry["created"], dict(entry["info"]))

    def counts(self) -> dict[str, int]:
        data = self._fresh()
        return {kind: len(data[kind]) for kind in KINDS}

    def is_empty(self) -> bool:
        return not any(self.counts().values())
