"""Start, watch, cancel and re-attach to local training processes.

The trainer runs as ``python -m azml_magics.backends.local.trainer JOB_DIR`` in a new session, so
Ctrl-C in the notebook leaves it running; with several processes it is ``accelerate launch ... -m
azml_magics.backends.local.trainer JOB_DIR`` and the launcher is the job's process (its command line
names the trainer and the folder too, and its session holds every worker). A daemon thread waits on every child this process starts,
so a killed trainer never lingers as a zombie. A process is only ever signalled after its pid's
command line is checked to be that job's trainer. A job whose process is gone while its status is
not final (SIGKILL, out of memory, a reboot) is marked Failed, with its log kept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ...errors import AzmlError, NotFound
from ..base import CANCELED, FAILED, TERMINAL_STATES, JobStatus, JobStep, LogChunk
from . import jobfiles

_children: dict[int, subprocess.Popen] = {}
check_name = jobfiles.check_job_name


def create(home: Path, job: jobfiles.JobRecord) -> Path:
    """Write job.json and a Queued status.json; refuse an existing name."""
    name = job.name
    folder = jobfiles.job_dir(home, check_name(name))
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise AzmlError(f"a local job named '{name}' exists already; choose another name or leave it out.") from None
    job.write(folder)
    jobfiles.write_json(folder / "status.json", jobfiles.new_status(name))
    return folder


def command(folder: Path, launch: dict | None = None) -> list[str]:
    """The trainer's command line; through ``accelerate launch`` when ``launch`` (a LaunchPlan's JSON) asks."""
    from . import device

    plan = device.LaunchPlan.from_json(launch)
    trainer = [jobfiles.TRAINER_MODULE, str(Path(folder).resolve())]
    if plan.launcher:
        return device.launcher_args(plan) + trainer
    return [sys.executable, "-m", *trainer]


def launch(folder: Path) -> int:
    """Start the trainer for ``folder`` (as its job.json's launch plan says); return its pid."""
    folder = Path(folder).resolve()
    cmd = command(folder, jobfiles.read_json(folder / jobfiles.JobRecord.FILE).get("launch"))
    # no progress bars in train.log (tqdm's, the hub's, datasets'): the trainer logs one line per event
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1",
               HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    with open(folder / "train.log", "ab") as logfile:
        proc = subprocess.Popen(
            cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=folder,
        )
    _children[proc.pid] = proc
    threading.Thread(target=_reap, args=(proc,), name=f"azml-reap-{proc.pid}", daemon=True).start()
    jobfiles.write_json(folder / "launch.json", {"pid": proc.pid, "cmdline": cmd, "launched": time.time()})
    return proc.pid


def _reap(proc: subprocess.Popen) -> None:
    proc.wait()


def is_trainer(pid: int | None, folder: Path) -> bool:
    """True when ``pid`` is alive and its command line is this job's trainer."""
    if not pid:
        return False
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return jobfiles.TRAINER_MODULE in cmd and str(Path(folder).resolve()) in cmd


def _pid(folder: Path, status: dict) -> int | None:
    return status.get("pid") or jobfiles.read_json(folder / "launch.json").get("pid")


def read_status(folder: Path) -> dict:
    """status.json, after noticing a trainer that died without saying so."""
    status = jobfiles.read_json(folder / "status.json")
    if not status:
        raise NotFound(f"no local job named '{folder.name}'; list jobs with %azml_status.")
    if status.get("state") in TERMINAL_STATES:
        return status
    pid = _pid(folder, status)
    launched = jobfiles.read_json(folder / "launch.json")
    if not launched:  # created, not started yet
        return status
    if is_trainer(pid, folder):
        return status
    time.sleep(0.05)  # it may have written its final status as it exited
    status = jobfiles.read_json(folder / "status.json")
    if status.get("state") in TERMINAL_STATES or is_trainer(pid, folder):
        return status
    return _mark_dead(folder, status, pid)


def _mark_dead(folder: Path, status: dict, pid: int | None) -> dict:
    code = _exit_code(pid)
    how = f"was killed by signal {-code}" if code is not None and code < 0 else (
        f"exited with code {code}" if code is not None else "ended")
    error = f"the training process (pid {pid}) {how} without finishing; see train.log"
    for s in status.get("steps", []):
        if s["state"] == "Running":
            s.update(state=FAILED, ended=time.time(), error=error)
    status.update(state=FAILED, ended=time.time(), error=error)
    jobfiles.write_json(folder / "status.json", status)
    close_run(folder, status, "FAILED")
    return status


def close_run(folder: Path, status: dict, state: str) -> None:
    """End the job's MLflow run (FAILED, KILLED) when its trainer could not: a killed process leaves
    the run RUNNING for ever in the MLflow UI. Nothing to do before the trainer created a run."""
    if not status.get("run_id"):
        return
    from . import registry

    try:
        mc = registry.client(jobfiles.JobRecord.read(folder).home)
        if mc.get_run(status["run_id"]).info.status == "RUNNING":
            mc.set_terminated(status["run_id"], state)
    except Exception:  # noqa: BLE001 - the job's status already says what happened; the run is a mirror
        pass


def _exit_code(pid: int | None) -> int | None:
    proc = _children.get(pid or -1)
    if proc is None:  # started by another process (before a kernel restart): its code is gone
        return None
    try:
        return proc.wait(timeout=2)  # the reaper thread may be inside wait() already
    except subprocess.TimeoutExpired:
        return None


def cancel(folder: Path, grace: float = 10.0) -> dict:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the job ends Canceled."""
    status = read_status(folder)
    if status.get("state") in TERMINAL_STATES:
        return status
    pid = _pid(folder, status)
    if is_trainer(pid, folder):
        jobfiles.write_json(folder / jobfiles.CANCEL_FILE, {"requested": time.time()})
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while time.time() < deadline and is_trainer(pid, folder):
            time.sleep(0.1)
        if is_trainer(pid, folder):
            os.killpg(pid, signal.SIGKILL)  # its own session: workers go too
            deadline = time.time() + 5
            while time.time() < deadline and is_trainer(pid, folder):
                time.sleep(0.05)
    status = jobfiles.read_json(folder / "status.json")
    if status.get("state") not in TERMINAL_STATES:
        for s in status.get("steps", []):
            if s["state"] in ("Running", "NotStarted"):
                s.update(state=CANCELED, ended=time.time() if s["state"] == "Running" else None)
        status.update(state=CANCELED, ended=time.time(), error="canceled by the user")
        jobfiles.write_json(folder / "status.json", status)
        close_run(folder, status, "KILLED")
    return status


def to_job_status(status: dict) -> JobStatus:
    return JobStatus(
        name=status["name"],
        state=status["state"],
        steps=[JobStep(s["name"], s["state"], s.get("started"), s.get("ended"), s.get("error")) for s in status.get("steps", [])],
        started=status.get("started"),
        ended=status.get("ended"),
        error=status.get("error"),
        progress=status.get("progress"),
        train_step=status.get("train_step"),
        train_steps=status.get("train_steps"),
        eval_split=status.get("eval_split"),
        outputs=dict(status.get("outputs") or {}),
    )


def read_log(folder: Path, cursor: object = None, limit: int = 1 << 20) -> LogChunk:
    """Complete lines written since ``cursor`` (a byte offset)."""
    offset = int(cursor or 0)
    path = folder / "train.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
    except FileNotFoundError:
        data = b""
    end = data.rfind(b"\n") + 1
    status = jobfiles.read_json(folder / "status.json")
    if status.get("state") in TERMINAL_STATES and not is_trainer(_pid(folder, status), folder):
        end = len(data)  # nothing more will come: hand over a last partial line too
    lines = data[:end].decode("utf-8", errors="replace").splitlines()
    return LogChunk(lines, offset + end, status.get("current_step"))


def list_names(home: Path) -> list[str]:
    root = jobfiles.jobs_dir(home)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "status.json").exists()]
    return [p.name for p in sorted(found, key=lambda p: jobfiles.read_json(p / "status.json").get("created") or 0)]
