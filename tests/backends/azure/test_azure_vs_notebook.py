"""Same inputs, same requests: the original notebook's code and our magics, field by field.

Both run against one emulator: first the seed notebook's cells (transcribed in
azureml_emulator/notebook/seed_cells.py), then the same story through the magics in a real
IPython shell. The create requests each side sent (compute, job, model, endpoint, deployment,
traffic, scoring) are taken from the emulator's request log and compared field by field; the only
differences allowed are the documented fixes listed in ``FIXES``.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.paths import REPO, SAMPLE

pytestmark = [pytest.mark.azure, pytest.mark.slow]

ROOT = REPO
SEED = ROOT / "azureml_emulator" / "notebook" / "seed_cells.py"
MODEL = "Phi-4"  # the seed's Phi-3-mini-4k-instruct is archived (fine-tuning retired on 2025-08-30)
# the seed's deployment VM (V100) is not in Phi-4's inference list; both sides use one that is
DEPLOY_VM = "Standard_NC24ads_A100_v4"
# The tag as it was before learning_rate_min/max were added: with them the original's component call
# raises (an unexpected keyword), so the original could not send a job at all.
OLD_DEFAULTS = {"apply_deepspeed": "true", "deepspeed_stage": "2", "apply_lora": "true",
                "ignore_mismatched_sizes": "false", "num_train_epochs": "1", "per_device_train_batch_size": "1",
                "per_device_eval_batch_size": "1", "learning_rate": "5e-6", "save_total_limit": "1"}

# Documented differences (azml_magics/backends/azure/__init__.py; the reference doc's "Where the
# original flow breaks"), as paths into the request bodies.
FIXES = {
    # data is uploaded once as content-versioned data assets, not as an anonymous upload per submission
    "job:train_file_path", "job:test_file_path",
    # the user's num_train_epochs: 3 wins over model_specific_defaults' 1 (the original lets the tag win)
    "job:num_train_epochs",
    # lineage tags: which registry model a job fine-tuned; which job a registered model came from
    "job:tags", "model:tags",
    # ownership tags (azml.created_by, azml.record) on the cluster, endpoint and deployment: a damaged
    # state record is rebuilt from them (backends/azure/owned.py)
    "compute:tags", "endpoint:tags", "deployment:tags",
}
OWNER_TAGS = ("azml.created_by", "azml.record")


def owner_tags_only(body: dict) -> bool:
    """The body's top-level tags are exactly our two ownership tags (the original sends none)."""
    return sorted((body.get("tags") or {})) == sorted(OWNER_TAGS) and body["tags"]["azml.created_by"] == "azml_magics"



def run_seed(namespace: dict) -> None:
    source = SEED.read_text().replace("Phi-3-mini-4k-instruct", MODEL).replace('"Standard_NC6s_v3"', f'"{DEPLOY_VM}"')
    cells = re.split(r"^# %% .*$", source, flags=re.M)
    for cell in cells:
        exec(compile(cell, str(SEED), "exec"), namespace)  # noqa: S102 - the transcribed notebook


def sample_splits() -> dict:
    return {split: [json.loads(line) for line in (SAMPLE / f"{split}.jsonl").read_text().splitlines() if line.strip()]
            for split in ("train_sft", "test_sft", "train_gen", "test_gen")}


def by_route(entries: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in entries:
        if e["method"] in ("PUT", "POST", "PATCH") and e.get("json") is not None:
            out.setdefault(e["route"], []).append(e["json"])
    return out


def flatten(value, prefix="") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def same(a, b) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)  # literal inputs: "5e-6" and "5e-06" are one number
    except (TypeError, ValueError):
        return False


def differences(ours: dict, theirs: dict, *, names: dict[str, str], ignore=()) -> list[str]:
    """Field paths whose values differ, after replacing generated names (job, endpoint) with tokens."""
    def norm(body):
        text = json.dumps(body, sort_keys=True)
        for real, token in names.items():
            text = text.replace(real, token)
        return flatten(json.loads(text))

    a, b = norm(ours), norm(theirs)
    out = []
    for key in sorted(set(a) | set(b)):
        if any(part in key for part in ignore):
            continue
        if not same(a.get(key), b.get(key)):
            out.append(f"{key}: ours={a.get(key)!r} original={b.get(key)!r}")
    return out


def job_inputs(body: dict) -> dict:
    jobs = body["properties"]["jobs"]
    node = next(iter(jobs.values()))
    return {k: v.get("value", v.get("uri")) for k, v in node["inputs"].items()}


@pytest.fixture
def emulator_env(azure_emulator, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    azure_emulator.faults.model_specific_defaults = OLD_DEFAULTS
    azure_emulator.faults.job_duration = 2.0
    return azure_emulator


def test_our_create_requests_match_the_original_notebooks(emulator_env, ip, tmp_path, monkeypatch):
    from tests.shell import run_cell

    emu = emulator_env
    (tmp_path / "original").mkdir()
    (tmp_path / "ours").mkdir()

    monkeypatch.chdir(tmp_path / "original")
    ns = {"SUBSCRIPTION_ID": emu.subscription_id, "RESOURCE_GROUP": emu.resource_group,
          "WORKSPACE_NAME": emu.workspace, "SAMPLE_SPLITS": sample_splits()}
    run_seed(ns)
    original = by_route(emu.requests())
    mark = len(emu.requests())
    emu.state.reset_resources()  # the same starting point for our run: an empty workspace

    monkeypatch.chdir(tmp_path / "ours")
    for split, rows in sample_splits().items():
        folder = tmp_path / "ours" / "ultrachat_200k_dataset"
        folder.mkdir(exist_ok=True)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ours" / "sample_score.json").write_text(
        (tmp_path / "original" / "ultrachat_200k_dataset" / "sample_score.json").read_text())
    cells = [
        "%config AzmlMagics.poll_interval = 0.2",
        f"%azml_connect --backend azure --subscription {emu.subscription_id} --resource-group "
        f"{emu.resource_group} --workspace {emu.workspace}",
        f"""%%azml_finetune
model: {MODEL}
data: ultrachat_200k_dataset
compute: {{name: gpu-cluster-big, size: Standard_NC24ads_A100_v4, max_instances: 2}}
parameters:
  num_train_epochs: 3
  per_device_train_batch_size: 1
  per_device_eval_batch_size: 1
  learning_rate: 5.0e-6
  lr_scheduler_type: cosine
  apply_lora: true
  apply_deepspeed: true
  deepspeed_stage: 2
experiment: chat_completion_{MODEL}""",
        "%azml_register",
        f"%azml_deploy --endpoint {ns['online_endpoint_name']}",  # the original deleted its endpoint
        "%azml_chat --request-file sample_score.json",
    ]
    for cell in cells:
        result, out, _ = run_cell(ip, cell)
        assert result.success, f"{cell.splitlines()[0]} failed: {result.error_in_exec or result.error_before_exec}\n{out}"
    ours = by_route(emu.requests()[mark:])

    their_job = ns["pipeline_job"].name
    our_job = next(iter(ours["job_create"][0:1]), {})
    our_job_name = [e for e in emu.requests()[mark:] if e["route"] == "job_create"][0]["path"].rsplit("/", 1)[-1]
    our_version = [e for e in emu.requests()[mark:] if e["route"] == "model_create"][0]["path"].rsplit("/", 1)[-1]
    names = {their_job: "<job>", our_job_name: "<job>", ns["timestamp"]: "<version>", our_version: "<version>"}

    # compute: identical but our ownership tags
    assert differences(ours["compute_create"][0], original["compute_create"][0], names=names, ignore=("tags.",)) == []
    assert owner_tags_only(ours["compute_create"][0]) and not original["compute_create"][0].get("tags")

    # the pipeline job: same settings, display name, experiment, compute, model, parameters but the fixes
    a, b = job_inputs(our_job), job_inputs(original["job_create"][0])
    diff = [k for k in sorted(set(a) | set(b)) if not same(a.get(k), b.get(k))]
    assert set(diff) <= {f.split(":", 1)[1] for f in FIXES if f.startswith("job:")}, diff
    assert a["num_train_epochs"] in (3, "3") and b["num_train_epochs"] in (1, "1")
    assert "/data/azml-train_sft/versions/" in str(a["train_file_path"])  # a data asset, by content hash
    assert differences(our_job, original["job_create"][0], names=names,
                       ignore=("properties.jobs.", "properties.tags", "properties.sourceJobId")) == []

    # registered model: same path, type, name, description; ours adds lineage tags
    model_ours, model_theirs = ours["model_create"][0], original["model_create"][0]
    assert differences(model_ours, model_theirs, names=names, ignore=("properties.tags",)) == []
    assert model_ours["properties"]["tags"]["azml.job"] == our_job_name

    # endpoint (create and traffic), deployment, scoring: identical but our ownership tags
    for route in ("endpoint_create", "deployment_create", "score"):
        assert len(ours.get(route, [])) == len(original.get(route, [])), route
        for mine, theirs in zip(ours.get(route, []), original.get(route, [])):
            tagged = route != "score"
            assert differences(mine, theirs, names=names, ignore=("tags.",) if tagged else ()) == [], route
            assert not tagged or (owner_tags_only(mine) and not theirs.get("tags")), route
