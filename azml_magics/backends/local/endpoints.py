"""Local endpoint processes: start, find, list and stop them, and survive a kernel restart.

Each endpoint is a server process (:mod:`.server`) in its own session, so Ctrl-C in a cell or a
kernel restart leaves it running. What we know of it lives in ``<home>/endpoints/``:
``<name>.json`` (pid, process start time, command line, port, model; written atomically),
``<name>.key`` (the generated key, mode 0600, never printed) and ``<name>.log``. A process is only
ever signalled after its pid, start time and command line all match the record, so a recycled pid
or another program is never killed. This module is light: no torch, no web framework.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ...errors import AzmlError, NotFound, RemoteError, SpecError
from ...files import write_json
from ...spec_values import check_endpoint_name
from ...waits import wait as waiting_for
from ..base import Endpoint

SERVER_MODULE = "azml_magics.backends.local.server"
PACKAGE_ROOT = Path(__file__).resolve().parents[3]
UP, UNHEALTHY, DOWN = "Succeeded", "Unhealthy", "Down"


def endpoints_dir(home: Path | str) -> Path:
    return Path(home).expanduser() / "endpoints"


def _paths(home: Path | str, name: str) -> tuple[Path, Path, Path]:
    folder = endpoints_dir(home)
    return folder / f"{name}.json", folder / f"{name}.key", folder / f"{name}.log"


# ----------------------------------------------------------------------------- files
def _write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an older file keeps its mode through O_CREAT
        fh.write(key)


def _read_record(home: Path | str, name: str) -> dict | None:
    path = _paths(home, name)[0]
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("name") == name else None


def _remove_files(home: Path | str, name: str) -> None:
    for path in _paths(home, name):
        path.unlink(missing_ok=True)


def read_key(home: Path | str, name: str) -> str:
    """The endpoint's key, for a client; never print it."""
    path = _paths(home, check_endpoint_name(name))[1]
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"no key for local endpoint '{name}': it was deleted or never deployed; deploy it again.") from None


# ----------------------------------------------------------------------------- processes
def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie (others' pids: no-op)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _is_server_command(cmdline: list[str], name: str) -> bool:
    return SERVER_MODULE in cmdline and any(
        a == "--name" and b == name for a, b in zip(cmdline, cmdline[1:])
    )


def _process(record: dict):
    """The live ``psutil.Process`` the record describes, or None: pid, start time and command line must match."""
    import psutil

    pid = int(record.get("pid") or 0)
    if pid <= 0:
        return None
    _reap(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # died since the reap above
            _reap(pid)
            return None
        if abs(proc.create_time() - float(record.get("create_time", 0))) > 1.0:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if cmdline != record.get("cmdline") or not _is_server_command(cmdline, record["name"]):
        return None
    return proc


def _gone(proc) -> bool:
    """True once the process has exited (a zombie counts: only its parent can collect it)."""
    import psutil

    _reap(proc.pid)
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _stop_process(proc, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; works whether or not we are its parent."""
    import psutil

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _gone(proc):
                return
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(port: int, timeout: float = 2.0) -> dict | None:
    import httpx

    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=timeout)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def log_tail(path: Path, lines: int = 6) -> str:
    """The last meaningful lines of a server log, joined on one line (progress bars left out)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip() and "it/s]" not in ln]
    return " | ".join(kept[-lines:])[-800:] or "(empty log)"


# ----------------------------------------------------------------------------- the public functions
def _urls(port: int) -> tuple[str, str]:
    """(scoring URI, OpenAI base URL) of a server on ``port``."""
    return f"http://127.0.0.1:{port}/score", f"http://127.0.0.1:{port}/v1"


def _endpoint(record: dict, state: str, **details) -> Endpoint:
    port = record["port"]
    scoring_uri, openai_base_url = _urls(port)
    return Endpoint(
        name=record["name"],
        backend="local",
        scoring_uri=scoring_uri,
        state=state,
        deployment=record.get("deployment", "demo"),
        model=record.get("model"),
        instance_type="local",
        instance_count=1,
        openai_base_url=openai_base_url,
        details={
            "pid": record.get("pid"),
            "port": port,
            "log": record.get("log"),
            "model_dir": record.get("model_dir"),
            "started": record.get("started"),
            "engine": record.get("engine"),
            **details,
        },
    )


def start_endpoint(
    home: Path | str,
    name: str,
    model_dir: Path | str,
    *,
    model_ref: str,
    deployment: str = "demo",
    timeout: float = 180,
    server_args: tuple[str, ...] = (),
) -> Endpoint:
    """Start a server for ``model_dir`` (a Hugging Face folder) and wait until it answers /health.

    A dead endpoint of the same name is replaced (a redeploy); a live one is refused.
    ``server_args`` are extra ``server.py`` options, e.g. ``("--max-batch", "4")``.
    """
    check_endpoint_name(name)
    model_dir = Path(model_dir).expanduser().resolve()
    from .registry import is_adapter_folder

    adapter_on_base = "--base-model-dir" in server_args and is_adapter_folder(model_dir)
    if not (model_dir / "config.json").is_file() and not adapter_on_base:
        raise AzmlError(f"cannot serve {model_dir}: it is not a Hugging Face model folder (no config.json).")
    from ...state import home_lock

    # two deploys of one name (two kernels) go one after the other: the second finds the first running
    with home_lock(home, f"endpoint-{name}", timeout=timeout + 60):
        return _start(home, name, model_dir, model_ref, deployment, timeout, server_args)


def _start(home, name, model_dir, model_ref, deployment, timeout, server_args) -> Endpoint:
    existing = _read_record(home, name)
    if existing and _process(existing):
        raise SpecError(
            f"local endpoint '{name}' is already running on port {existing['port']}; "
            "delete it first or deploy under another name."
        )
    _remove_files(home, name)
    folder = endpoints_dir(home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # mkdir's mode is not applied to a folder that exists already
    record_path, key_path, log_path = _paths(home, name)
    _write_key(key_path, secrets.token_urlsafe(32))
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    for attempt in range(3):  # a port picked free can be taken before the server binds it
        port = free_port()
        cmdline = [
            sys.executable, "-m", SERVER_MODULE, "--model-dir", str(model_dir), "--key-file", str(key_path),
            "--port", str(port), "--name", name, "--model-name", model_ref, "--deployment", deployment,
            *server_args,
        ]
        with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as log:
            proc = subprocess.Popen(
                cmdline, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=str(folder),
            )
        record = {
            "name": name, "pid": proc.pid, "create_time": _create_time(proc.pid), "cmdline": cmdline,
            "port": port, "model": model_ref, "model_dir": str(model_dir), "deployment": deployment,
            "log": str(log_path), "started": time.time(),
        }
        write_json(record_path, record, sort_keys=True)
        try:
            with waiting_for(f"Starting endpoint {name} (the server loads {model_ref})") as waiting:
                ready = _wait_ready(proc, port, timeout)
                if not ready:
                    waiting.end_as("failed")
        except BaseException:  # Ctrl-C while waiting: leave nothing half-started behind
            _abandon(proc, home, name)
            raise
        if ready:
            record["engine"] = ready.get("engine")  # what the server chose (--engine auto), for the deploy output
            write_json(record_path, record, sort_keys=True)
            return _endpoint(record, UP)
        tail = log_tail(log_path)
        if proc.poll() is not None and "address already in use" in tail.lower() and attempt < 2:
            continue
        _abandon(proc, home, name, keep_log=True)
        why = "exited" if proc.poll() is not None else f"did not answer /health within {timeout:g} s"
        raise AzmlError(f"local endpoint '{name}' failed to start (the server {why}): {tail} (log: {log_path})")
    raise AssertionError("unreachable")


def _create_time(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return 0.0


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> dict | None:
    """The server's first /health answer, or None if it exited or never answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        health = _health(port, timeout=1.0)
        if health and health.get("pid") == proc.pid:
            return health
        time.sleep(0.2)
    return None


def _abandon(proc: subprocess.Popen, home: Path | str, name: str, keep_log: bool = False) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    record_path, key_path, _ = _paths(home, name)
    record_path.unlink(missing_ok=True)
    key_path.unlink(missing_ok=True)
    if not keep_log:
        _paths(home, name)[2].unlink(missing_ok=True)


def _record(home: Path | str, name: str) -> dict:
    record = _read_record(home, check_endpoint_name(name))
    if record is None:
        known = ", ".join(sorted(p.stem for p in endpoints_dir(home).glob("*.json"))) or "none"
        raise NotFound(f"no local endpoint named '{name}' (endpoints here: {known}).")
    return record


def get_endpoint(home: Path | str, name: str) -> Endpoint:
    """The endpoint and its state, from its process and a /health probe: Succeeded, Unhealthy or Down."""
    return _probe(_record(home, name))


def client_target(home: Path | str, name: str) -> tuple[str, str, str]:
    """(scoring URI, OpenAI base URL, key) of a running endpoint: what a client needs for each message.

    Why the process is checked first (pid, start time and command line, a few milliseconds, no
    request): after our server died anything may listen on its port, and it must never get the key
    or the prompt. A Down endpoint is refused in one line. Never print the key."""
    record = verified_record(home, name)
    scoring_uri, openai_base_url = _urls(record["port"])
    return scoring_uri, openai_base_url, read_key(home, name)


def verified_record(home: Path | str, name: str) -> dict:
    """The endpoint's record once its recorded server process is seen running (RemoteError if Down)."""
    record = _record(home, name)
    if _process(record) is None:
        raise RemoteError(
            f"local endpoint '{name}' is Down: its server process (pid {record.get('pid')}) is not running, "
            f"so nothing was sent to port {record.get('port')}; deploy it again (%azml_deploy) or delete it."
        )
    return record


def limits(home: Path | str, name: str) -> dict:
    """What the running endpoint accepts, from its /health (``{"max_new_tokens": N}``; empty if unknown)."""
    health = _health(verified_record(home, name)["port"])
    cap = health.get("max_new_tokens") if health else None
    return {"max_new_tokens": cap} if isinstance(cap, int) and cap > 0 else {}


def _probe(record: dict) -> Endpoint:
    proc = _process(record)
    if proc is None:
        return _endpoint(record, DOWN, reason="its server process is not running; deploy again to restart it")
    health = _health(record["port"])
    if health and health.get("pid") == proc.pid:
        return _endpoint(record, UP)
    return _endpoint(record, UNHEALTHY, reason="the server process runs but does not answer /health")


def records(home: Path | str) -> list[dict]:
    """Every readable endpoint record of this home, oldest first (no process is probed)."""
    folder = endpoints_dir(home)
    if not folder.is_dir():
        return []
    found = [_read_record(home, p.stem) for p in sorted(folder.glob("*.json"))]
    return sorted(filter(None, found), key=lambda r: r.get("started", 0))


def list_endpoints(home: Path | str) -> list[Endpoint]:
    return [_probe(r) for r in records(home)]


def stop_endpoint(home: Path | str, name: str) -> bool:
    """Stop the endpoint's server (only the recorded, verified process) and remove its files.

    Returns False when there was no such endpoint. A record whose process is gone, or whose pid now
    belongs to another program, is removed without signalling anything.
    """
    from ...state import home_lock

    with home_lock(home, f"endpoint-{check_endpoint_name(name)}", timeout=300):
        record = _read_record(home, name)
        if record is None:
            _remove_files(home, name)
            return False
        proc = _process(record)
        if proc is not None:
            _stop_process(proc)
        _remove_files(home, name)
        return True
