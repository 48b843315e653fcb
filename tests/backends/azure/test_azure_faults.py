"""Azure faults a real user meets, through the backend: each ends in one clear line, nothing is left
created that the user did not get (see azureml_emulator/README.md for where each fault's text comes from)."""

from __future__ import annotations

import pytest

from azml_magics.errors import AzmlError, SpecError
from tests.backends.azure.test_azure_e2e import creates, log_since, spec_text

pytestmark = pytest.mark.azure
A100 = "standardNCADSA100v4Family"


def test_list_usage_reports_the_family_quota_and_the_service_refuses_a_node_that_does_not_fit(azure, emulator):
    from azure.ai.ml.entities import AmlCompute
    from azure.core.exceptions import HttpResponseError

    emulator.faults.quota = {A100: 12}
    client = azure.backend._ws()
    usage = {u.name["value"]: u for u in client.compute.list_usage()}  # the SDK keeps name as the REST dict
    assert (usage[A100].limit, usage[A100].unit) == (12, "Count")
    with pytest.raises(HttpResponseError, match="vCPU quota of 12 and cannot accomodate for at least 1 requested"):
        client.compute.begin_create_or_update(AmlCompute(name="too-big", size="Standard_NC24ads_A100_v4")).result()
    assert "too-big" not in {c.name for c in client.compute.list()}


def test_finetune_over_the_family_quota_is_one_line_before_anything_is_created(azure, emulator):
    emulator.faults.quota = {A100: 12}  # one Standard_NC24ads_A100_v4 node needs 24
    mark = len(emulator.requests())
    with pytest.raises(SpecError) as err:
        azure.finetune(spec_text())
    line = str(err.value)
    assert "\n" not in line
    assert f"Standard_NC24ads_A100_v4 needs 24 vCPUs per node but the subscription's {A100} quota has 12 free" in line
    log = log_since(emulator, mark)
    assert creates(log) == [] and "usages" in [e["route"] for e in log]


def test_enough_quota_passes_and_the_cluster_is_created(azure, emulator):
    from azml_magics.spec import ComputeSpec

    emulator.faults.quota = {A100: 24}
    info = azure.backend.ensure_compute(ComputeSpec(name="fits", size="Standard_NC24ads_A100_v4"), azure.model("Phi-4"))
    assert info.created and not any("quota" in n for n in info.notes)


def test_a_retired_ncv3_size_is_refused_as_azure_no_longer_offers_it(azure, emulator):
    """NCv3 (V100) sizes were retired on 2025-09-30 (Microsoft's NCv3 retirement guide): the region no longer
    lists them and a create is refused; the backend says so in one line before creating anything."""
    from azure.ai.ml.entities import AmlCompute
    from azure.core.exceptions import HttpResponseError

    client = azure.backend._ws()
    assert "Standard_NC6s_v3" not in {s.name for s in client.compute.list_sizes()}
    with pytest.raises(HttpResponseError, match="Standard_NC6s_v3 is not supported"):
        client.compute.begin_create_or_update(AmlCompute(name="v100", size="Standard_NC6s_v3")).result()
    import dataclasses

    from azml_magics.spec import ComputeSpec

    # a model whose allow list would take the size (Phi-4's does not: that refusal comes first otherwise)
    model = dataclasses.replace(azure.model("Phi-4"), finetune_allow_list=["Standard_NC6s_v3"])
    mark = len(emulator.requests())
    with pytest.raises(SpecError) as err:
        azure.backend.check_compute(ComputeSpec(name="v100", size="Standard_NC6s_v3"), model)
    line = str(err.value)
    assert "\n" not in line
    assert "Standard_NC6s_v3 is retired: Azure retired the NCv3 sizes on 2025-09-30" in line
    assert "Standard_NC24ads_A100_v4" in line
    assert creates(log_since(emulator, mark)) == []


def test_a_transient_500_on_submit_is_retried_and_makes_one_job(azure, emulator):
    emulator.faults.http("job_create", 500, retry_after=None, times=1)
    mark = len(emulator.requests())
    job = azure.finetune(spec_text(cluster="gpu-500"))
    puts = [e for e in log_since(emulator, mark) if e["route"] == "job_create"]
    assert len(puts) == 2  # the 500, then the retry that created it
    assert [j.name for j in azure.backend._ws().jobs.list()] == [job.name]


def test_a_500_that_persists_is_one_line_and_leaves_the_cluster_known(azure, emulator):
    emulator.faults.http("job_create", 500, retry_after=None, times=20)
    with pytest.raises(AzmlError) as err:
        azure.finetune(spec_text(cluster="gpu-500s"))
    line = str(err.value)
    assert "\n" not in line and "submit" in line and "unexpected error occurred in the service" in line
    assert list(azure.backend._ws().jobs.list()) == []
    # the cluster it made is recorded, so %azml_delete --all can remove it
    assert azure.state.get("computes", "gpu-500s") is not None


# -- identity-based datastores (no account key): uploads use the user's own token ---------------------
ROLE_LINE = "lacks Storage Blob Data Contributor on storage account wsemulatorstore"


def test_an_identity_datastore_takes_the_upload_with_the_users_token(azure, emulator):
    """Today's default datastore has no account key (recorded): the SDK uploads with the user's token,
    which Azurite authenticates; the job is submitted on that data."""
    emulator.faults.identity_datastores = True
    mark = len(emulator.requests())
    job = azure.finetune(spec_text(cluster="gpu-identity"))
    log = log_since(emulator, mark)
    assert job.name and "datastore_secrets" not in [e["route"] for e in log]
    assert sum(b.endswith(("train_sft.jsonl", "test_sft.jsonl")) for b in emulator.list_blobs()) >= 2


def _fresh_data_spec(tmp_path, role, cluster: str) -> str:
    """The sample cut by one row per role: content the blob store has not seen (the SDK skips the PUT
    of content already uploaded, which a Reader's HEAD can see)."""
    from tests.paths import SAMPLE

    text = spec_text(cluster=cluster)
    for name in ("train_sft.jsonl", "test_sft.jsonl"):
        rows = (SAMPLE / name).read_text().splitlines(keepends=True)
        cut = tmp_path / name
        cut.write_text("".join(rows[: len(rows) - 1 - ROLES.index(role)]))
        text = text.replace(str(SAMPLE / name), str(cut))
    return text


ROLES = [None, "Storage Blob Data Reader"]


@pytest.mark.parametrize("role", ROLES)
def test_a_missing_data_role_is_one_line_before_the_cluster_or_job_is_created(azure, emulator, role, tmp_path):
    """Without a writing data role storage answers 403 AuthorizationPermissionMismatch (to the HEAD the
    SDK sends first, or with Reader to the PUT); the backend uploads before it creates the cluster, so
    the line comes with nothing created, and it says who lacks which role where and how to grant it."""
    emulator.faults.identity_datastores = True
    emulator.faults.storage_data_role = role
    spec = _fresh_data_spec(tmp_path, role, "gpu-norole")
    mark = len(emulator.requests())
    with pytest.raises(AzmlError) as err:
        azure.finetune(spec)
    line = str(err.value)
    assert "\n" not in line and ROLE_LINE in line
    assert "403 AuthorizationPermissionMismatch" in line and "object id 00000000-0000-0000-0000-000000000009" in line
    scope = (f"/subscriptions/{emulator.subscription_id}/resourceGroups/{emulator.resource_group}"
             "/providers/Microsoft.Storage/storageAccounts/wsemulatorstore")
    assert ('az role assignment create --assignee 00000000-0000-0000-0000-000000000009 --role '
            f'"Storage Blob Data Contributor" --scope {scope}') in line
    log = log_since(emulator, mark)
    assert "storage_denied" in [e["route"] for e in log]
    assert [e["route"] for e in creates(log) if not e["route"].startswith("storage_")] == []
    assert azure.state.get("computes", "gpu-norole") is None and list(azure.backend._ws().jobs.list()) == []
    assert "gpu-norole" not in {c.name for c in azure.backend._ws().compute.list()}
    # once the role is granted the same cell goes through
    emulator.faults.storage_data_role = "Storage Blob Data Contributor"
    assert azure.finetune(spec).name


def test_the_magic_shows_the_missing_role_in_one_line(emulator, ip, tmp_path, monkeypatch):
    from tests.shell import run_cell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result, out, _ = run_cell(ip, f"%azml_connect --backend azure --subscription {emulator.subscription_id} "
                                  f"--resource-group {emulator.resource_group} --workspace {emulator.workspace}")
    assert result.success, out
    emulator.faults.identity_datastores = True
    emulator.faults.storage_data_role = None
    mark = len(emulator.requests())
    result, out, _ = run_cell(ip, "%%azml_finetune\n" + spec_text(cluster="gpu-magic-norole"))
    assert ROLE_LINE in out and "Traceback" not in out
    assert [ln for ln in out.splitlines() if ROLE_LINE in ln][0].count("az role assignment create") == 1
    assert [e["route"] for e in creates(log_since(emulator, mark)) if not e["route"].startswith("storage_")] == []
