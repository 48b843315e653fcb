"""Two training processes through ``accelerate launch`` on the CPU (gloo), like any local job.

The same global batch (8 rows a step) as one process with batch 8, as two processes with batch 4:
accelerate shards each step's random rows across the processes and the Trainer sums the token
losses over both before dividing by the step's target tokens, so the run is the same training.
Both saved models are then scored the same way here (token NLL over the held-out rows / their target
tokens; the Trainer's own eval_loss is not comparable: two processes batch the eval rows
differently and accelerate repeats rows to even the shards). Tolerance: 1e-3 relative on that loss,
1e-4 on every logged training loss (float sums in a different order).
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from tests.backends.local.test_local_jobs import wait_for
from tests.backends.local.tiny_jobs import wait_done

TOLERANCE = 1e-3
COMMON = {"num_train_epochs": 1, "logging_steps": 5, "seed": 42}


def submit(backend, data, local: dict | None = None, **parameters):
    """Through the API's own plan (the spec's local: section included) straight to the backend."""
    from azml_magics.plan import FinetunePlan, merge_parameters
    from azml_magics.spec import finetune_from_dict

    raw = {"model": "azml-tiny-phi3", "parameters": {**COMMON, **parameters}}
    if local:
        raw["local"] = local
    spec = finetune_from_dict(raw)
    info = backend.get_model(spec.model)
    plan = FinetunePlan(spec, info, backend.check_compute(spec.compute, info),
                        merge_parameters(spec.parameters, info.model_defaults), data=data)
    return backend.submit(plan)


def heldout_loss(backend, job: str, files) -> float:
    """Token NLL of the job's saved model over the held-out rows (the trainer's own split) / target tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from azml_magics.backends.local import train_data

    folder = backend.home / "jobs" / job / "output" / "hf_model"
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    _, evaluation = train_data.split_data(files)
    rows, _ = train_data.tokenize_all(tok, evaluation, 512)
    total = count = 0.0
    with torch.no_grad():
        for r in rows:
            logits = model(torch.tensor([r["input_ids"]])).logits[0, :-1]
            labels = torch.tensor(r["labels"][1:])
            total += float(torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100, reduction="sum"))
            count += int((labels != -100).sum())
    return total / count


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(local_backend, sample_data_files):
    one = submit(local_backend, sample_data_files, per_device_train_batch_size=8)
    status = wait_done(local_backend, one.name, timeout=300)
    assert status.state == "Completed", status.error
    two = submit(local_backend, sample_data_files, local={"processes": 2}, per_device_train_batch_size=4)
    folder = local_backend.home / "jobs" / two.name
    launch = json.loads((folder / "launch.json").read_text())
    assert "accelerate.commands.launch" in launch["cmdline"] and launch["cmdline"][launch["cmdline"].index("--num_processes") + 1] == "2"
    status = wait_done(local_backend, two.name, timeout=400)
    log = "\n".join(local_backend.logs(two.name).lines)
    assert status.state == "Completed", (status.error, log[-3000:])
    assert "2 process(es), DDP" in log
    a, b = heldout_loss(local_backend, one.name, sample_data_files), heldout_loss(local_backend, two.name, sample_data_files)
    print(f"held-out loss: one process {a:.6f}, two processes {b:.6f}, relative {abs(a - b) / a:.1e}")
    assert abs(a - b) / a <= TOLERANCE, (a, b)
    loss_one, loss_two = local_backend.metrics(one.name)["loss"], local_backend.metrics(two.name)["loss"]
    assert [p.step for p in loss_one] == [p.step for p in loss_two]  # the same optimizer steps: 208 rows / 8 a step
    assert [p.value for p in loss_two] == pytest.approx([p.value for p in loss_one], rel=1e-4)
    # only rank 0 wrote: one MLflow run, one model
    assert (folder / "output" / "hf_model" / "config.json").exists()
    assert log.count("training done") == 1


@pytest.mark.slow
def test_two_processes_cancel_and_reattach(local_backend, sample_data_files):
    ref = submit(local_backend, sample_data_files, local={"processes": 2}, per_device_train_batch_size=4,
                 max_steps=100000, logging_steps=50, evaluation_strategy="disable")
    folder = local_backend.home / "jobs" / ref.name
    wait_for(lambda: local_backend.status(ref.name).progress, timeout=300, what="training to start")
    launcher = json.loads((folder / "launch.json").read_text())["pid"]
    workers = [p.pid for p in psutil.Process(launcher).children(recursive=True) if "trainer" in " ".join(p.cmdline())]
    assert len(workers) == 2, workers
    # a fresh process (a restarted kernel) finds it running and re-attaches by name
    code = ("import sys\nfrom azml_magics.backends.local import LocalBackend\n"
            "b = LocalBackend(); b.connect({'home': sys.argv[1]}); print(b.status(sys.argv[2]).state)\n")
    out = subprocess.run([sys.executable, "-c", code, str(local_backend.home), ref.name], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "Running", out.stderr[-2000:]
    status = local_backend.cancel(ref.name)
    assert status.state == "Canceled" and status.error == "canceled by the user"
    for pid in [launcher, *workers]:
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                 timeout=30, what=f"process {pid} to exit")
    assert local_backend.status(ref.name).state == "Canceled"


@pytest.mark.slow
def test_a_dead_worker_fails_the_job_instead_of_cancelling_it(local_backend, sample_data_files):
    """The launcher stops the other processes with SIGTERM when one dies; with no cancel asked that is Failed."""
    import os
    import signal

    ref = submit(local_backend, sample_data_files, local={"processes": 2}, per_device_train_batch_size=4,
                 max_steps=100000, logging_steps=50, evaluation_strategy="disable")
    folder = local_backend.home / "jobs" / ref.name
    wait_for(lambda: local_backend.status(ref.name).progress, timeout=300, what="training to start")
    launcher = json.loads((folder / "launch.json").read_text())["pid"]
    workers = {p.pid: p.environ().get("RANK") for p in psutil.Process(launcher).children(recursive=True)
               if "trainer" in " ".join(p.cmdline())}
    rank1 = next(pid for pid, rank in workers.items() if rank == "1")
    os.kill(rank1, signal.SIGKILL)
    status = wait_for(lambda: (s := local_backend.status(ref.name)).done and s, timeout=120, what="the job to end")
    assert status.state == "Failed", (status.state, status.error)
    assert "another training process failed" in status.error or "without finishing" in status.error, status.error
    assert "canceled" not in status.error
