"""A damaged state file on Azure: what bills is found again by our tags, and only what is ours.

The real azure-ai-ml SDK against the loopback emulator, through the magics in a real IPython shell:
fine-tune (a cluster and a job), register, deploy, then the state file is overwritten with garbage;
a reconnect rebuilds the record from the workspace's resources tagged with this home's record id,
and ``%azml_delete --all`` deletes the endpoint and the cluster. An endpoint deployed from another
home on the same workspace carries another id and is left alone.
"""

from __future__ import annotations

import pytest

from azml_magics import api
from azml_magics.backends.azure import owned
from azml_magics.state import record_id
from tests.paths import SAMPLE
from tests.shell import run_cell

pytestmark = pytest.mark.azure

SPEC = {"model": "Phi-4", "data": {"train": str(SAMPLE / "train_sft.jsonl"), "test": str(SAMPLE / "test_sft.jsonl")},
        "compute": {"name": "gpu-ours", "size": "Standard_NC24ads_A100_v4", "max_instances": 2},
        "parameters": {"num_train_epochs": 1}}


def _body(emulator, route: str, name: str) -> dict:
    [entry] = [e for e in emulator.requests() if e["route"] == route and e["path"].endswith("/" + name)][:1]
    return entry["json"]


def test_damaged_state_then_delete_all_finds_our_tagged_endpoint_and_cluster(azure_emulator, ip, azml_home, tmp_path, monkeypatch):
    emulator = azure_emulator
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    emulator.faults.job_duration = 2.0
    connect = (f"%azml_connect --backend azure --subscription {emulator.subscription_id} "
               f"--resource-group {emulator.resource_group} --workspace {emulator.workspace}")
    try:
        run_cell(ip, "%config AzmlMagics.poll_interval = 0.05")
        res, out, _ = run_cell(ip, connect)
        assert res.success, out
        session = ip.azml.session
        session.backend.deploy_timeout = 60
        job = session.finetune(SPEC)
        assert session.watch(job.name, interval=0.1, timeout=60).state == "Completed"
        ref = session.register(job.name)
        res, out, _ = run_cell(ip, f"%azml_deploy {ref.name}:{ref.version} --endpoint ours-ep")
        assert res.success, out

        # a colleague's notebook (another home) deploys on the same workspace
        other = api.Session(home=tmp_path / "other-home", poll_interval=0.05)
        other.connect("azure", subscription_id=emulator.subscription_id, resource_group=emulator.resource_group,
                      workspace_name=emulator.workspace)
        other.backend.progress = lambda _: None
        other.backend.deploy_timeout = 60
        other.deploy({"model": f"{ref.name}:{ref.version}", "endpoint": "theirs-ep"})

        # what was sent: our two tags on each create, with this home's record id (a hash, no secret)
        ours = record_id(session.home, session.workspace.key)
        assert session.home == azml_home.resolve() and session.backend.record == ours
        assert ours != record_id(tmp_path / "other-home", session.workspace.key)
        expected = owned.owner_tags(ours)
        assert _body(emulator, "compute_create", "gpu-ours")["tags"] == expected
        assert _body(emulator, "endpoint_create", "ours-ep")["tags"] == expected
        assert _body(emulator, "deployment_create", "demo")["tags"] == expected
        job_tags = _body(emulator, "job_create", job.name)["properties"]["tags"]
        assert {k: job_tags[k] for k in expected} == expected and job_tags["azml.base_model"].endswith("/Phi-4/versions/8")
        # ... and stored and returned by the service as sent (recordings/endpoint_create_lro.json echoes tags)
        client = session.backend._ws()
        assert client.online_endpoints.get("ours-ep").tags == expected
        assert client.online_endpoints.get("theirs-ep").tags[owned.TAG_RECORD] != ours

        session.state.path.write_bytes(b"\x00\xffnot a state file")  # garbage over the record
        res, out, _ = run_cell(ip, connect)  # a restarted (or second) kernel
        assert res.success, out
        [warning] = [line for line in out.splitlines() if line.startswith("Warning:")]
        assert "was damaged" in warning and "found again: 1 endpoints, 1 jobs, 1 computes" in warning, warning
        res, deleted, _ = run_cell(ip, "%azml_delete --all")
        assert res.success, deleted
        assert "endpoint ours-ep" in deleted and "compute gpu-ours" in deleted, deleted
        assert "ours-ep" not in emulator.state.endpoints and "gpu-ours" not in emulator.state.computes
        assert "theirs-ep" in emulator.state.endpoints  # not ours: left running for its owner
        assert not session.state.list("endpoints") and not session.state.list("computes")
        kept = [p for p in session.state.path.parent.iterdir() if ".broken-" in p.name]
        assert len(kept) == 1 and kept[0].read_bytes() == b"\x00\xffnot a state file"
        other.delete(all=True)
        assert "theirs-ep" not in emulator.state.endpoints
    finally:
        api.reset_session()
