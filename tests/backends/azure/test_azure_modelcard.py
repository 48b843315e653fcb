"""The model card reader over every published registry spec (Azure/azureml-assets, vendored in
azureml_emulator/assets/azureml-assets/), in each shape the registry has used, and over shapes it does not know."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from azml_magics.backends.azure import modelcard
from azml_magics.errors import SpecError
from tests.paths import REPO, SHARED

pytestmark = pytest.mark.azure

TODAY = dt.date(2026, 7, 23)
VENDORED = REPO / "azureml_emulator" / "assets" / "azureml-assets"
SPECS = sorted(VENDORED.glob("models/*/spec.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def wire_card(spec: dict, *, with_system: bool = True, **kw):
    """The card from what the registry sends: tag values as strings, isArchived, system metadata."""
    tags = {k: v if isinstance(v, str) else repr(v) for k, v in (spec.get("tags") or {}).items()}
    return modelcard.model_info(
        name=spec["name"], version=str(spec["version"]), id=f"azureml://registries/azureml/models/{spec['name']}",
        tags=tags, system_metadata=spec.get("system_metadata") if with_system else None,
        archived=spec.get("isArchived"), today=TODAY, **kw)


def test_every_published_spec_is_vendored_unchanged():
    assert len(SPECS) == 4
    shared = SHARED / "data" / "azureml-assets" / "models"
    if not shared.is_dir():
        pytest.skip("no shared copy of the published assets on this machine")
    for spec in SPECS:
        assert spec.read_bytes() == (shared / spec.parent.name / "spec.yaml").read_bytes()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.parent.name)
def test_every_published_spec_reads_with_its_real_lists_tasks_and_state(path):
    spec = load(path)
    system = spec["system_metadata"]
    info = wire_card(spec)
    assert info.finetune_allow_list == system["SKU"]["finetuneRecommendedSkus"]
    assert info.inference_allow_list == system["SKU"]["inferenceRecommendedSkus"]
    assert info.tasks == system["tasks"]["fineTuningTasks"] == ["chat-completion"]
    assert info.deployment_options == system["deploymentOptions"]
    assert info.min_sku == "24 cores, 1 GPU, 220 GB RAM, 64 GB disk"
    assert info.model_defaults == spec["tags"]["model_specific_defaults"]  # the Python literal read back
    assert info.unpublished == [] and info.problems == []
    if spec.get("isArchived"):
        assert info.archived and info.deprecated == "fine-tuning retired on 2025-08-30"
        assert info.state == "archived; fine-tuning retired on 2025-08-30"
    else:
        assert spec["name"] == "Phi-4" and info.state == "live" and not info.archived and info.deprecated is None


def test_supported_computes_alone_are_read_when_sku_is_not_published():
    spec = load(VENDORED / "models" / "Phi-4" / "spec.yaml")
    system = dict(spec["system_metadata"])
    del system["SKU"]
    info = wire_card({**spec, "system_metadata": system})
    assert info.finetune_allow_list == system["supportedComputes"]["finetuneComputes"]
    assert info.inference_allow_list == system["supportedComputes"]["inferenceComputes"]
    assert info.unpublished == ["minimum SKU"]


def test_older_shapes_tags_with_literals_and_comma_properties():
    old = modelcard.model_info(name="m", version="1", id="x", today=TODAY, tags={
        "finetune_compute_allow_list": "['Standard_NC24ads_A100_v4', 'Standard_NC48ads_A100_v4']",
        "inference_compute_allow_list": "[Standard_NC6s_v3, Standard_NC12s_v3]",
        "finetuning_tasks": "chat-completion", "FinetuneRetirementDate": "2027-01-01"})
    assert old.finetune_allow_list == ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]
    assert old.inference_allow_list == ["Standard_NC6s_v3", "Standard_NC12s_v3"]
    assert old.tasks == ["chat-completion"] and old.state == "retiring on 2027-01-01" and old.deprecated is None
    props = modelcard.model_info(name="m", version="1", id="x", today=TODAY, properties={
        "finetune-recommended-sku": "Standard_NC24ads_A100_v4, Standard_ND96asr_v4", "finetuning-tasks": "chat-completion"})
    assert props.finetune_allow_list == ["Standard_NC24ads_A100_v4", "Standard_ND96asr_v4"]
    assert props.unpublished == ["inference allow list", "minimum SKU"]


def test_deprecated_but_not_yet_retired_is_refused_and_says_when_it_retires():
    info = modelcard.model_info(name="m", version="1", id="x", today=TODAY, system_metadata={
        "deprecation": {"finetuneDeprecationDate": "2026-06-30T00:00:00.000000Z",
                        "finetuneRetirementDate": "2026-09-30T00:00:00.000000Z"}})
    assert info.deprecated == "fine-tuning deprecated on 2026-06-30"
    assert info.state == "fine-tuning deprecated on 2026-06-30, retiring on 2026-09-30"


@pytest.mark.parametrize("system", [
    {"SKU": {"finetuneRecommendedSkus": {"Standard_NC24ads_A100_v4": 1}}, "tasks": 7},  # a map where a list was
    {"skuToNumReplicasMap": {"Standard_NC24ads_A100_v4": 1}},  # a shape the reader does not know
    "not a mapping at all",
    {"SKU": {"finetuneMinSkuSpec": "a lot"}, "deprecation": {"finetuneRetirementDate": "soon"}},
])
def test_unknown_shapes_never_raise_and_say_what_is_missing(system):
    info = modelcard.model_info(name="m", version="1", id="x", system_metadata=system, today=TODAY,
                                tags={"model_specific_defaults": "__import__('os').system('echo hacked')"})
    assert "fine-tune allow list" in info.unpublished or any("fine-tune allow list" in p for p in info.problems)
    assert info.finetune_allow_list is None and info.model_defaults == {}
    assert any("model_specific_defaults" in p for p in info.problems)  # read with literal_eval, never run
    note = modelcard.check_size("Standard_ND40rs_v2", info.finetune_allow_list, "fine-tune compute", info, "set")
    assert note and "not checked against an allow list" in note and "m version 1" in note


def test_a_size_outside_the_published_list_is_refused_with_the_list():
    info = wire_card(load(VENDORED / "models" / "Phi-4" / "spec.yaml"))
    with pytest.raises(SpecError) as err:
        modelcard.check_size("Standard_ND40rs_v2", info.finetune_allow_list, "fine-tune compute", info,
                             "set compute.size to")
    assert "Standard_ND40rs_v2 is not in Phi-4 version 8's fine-tune compute allow list" in str(err.value)
    assert "Standard_ND96isr_H100_v5" in str(err.value)
    assert modelcard.check_size("standard_nc24ads_a100_v4", info.finetune_allow_list, "x", info, "y") is None
