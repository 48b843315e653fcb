"""The fine-tune spec's typed values and the component < model < user merge."""

from __future__ import annotations

import pytest

from azml_magics.errors import SpecError
from azml_magics.pipeline_inputs import PIPELINE_INPUTS
from azml_magics.plan import merge_parameters, pipeline_display_name
from azml_magics.spec import FinetuneSpec, parse_deploy, parse_finetune

# The tag as the azureml registry serves it for Phi-3-mini-4k-instruct (newer versions add the
# learning-rate bounds that are not pipeline inputs).
PHI3_DEFAULTS = {
    "apply_deepspeed": "true",
    "deepspeed_stage": "2",
    "apply_lora": "true",
    "num_train_epochs": "1",
    "per_device_train_batch_size": "1",
    "learning_rate": "5e-6",
    "save_total_limit": "1",
    "precision": "16",
    "learning_rate_min": "1e-6",
    "learning_rate_max": "1e-4",
}


def test_values_are_normalised_to_component_types():
    spec = parse_finetune(
        """
model: Phi-3-mini-4k-instruct
parameters:
  num_train_epochs: 3
  learning_rate: 5e-6            # YAML 1.1 reads this as a string; we read a number
  apply_lora: true               # YAML bool -> the component's "true"
  precision: 16                  # int -> "16"
  deepspeed_stage: 3
  lora_dropout: 0.05
  max_steps: -1                  # the sentinel is allowed
"""
    )
    p = spec.parameters
    assert p["num_train_epochs"] == 3 and isinstance(p["num_train_epochs"], int)
    assert p["learning_rate"] == pytest.approx(5e-6) and isinstance(p["learning_rate"], float)
    assert p["apply_lora"] == "true"
    assert p["precision"] == "16"
    assert p["deepspeed_stage"] == "3"
    assert p["max_steps"] == -1


def test_merge_order_and_sources():
    eff = merge_parameters({"num_train_epochs": 3, "learning_rate": 2e-5}, PHI3_DEFAULTS,
                           derived={"number_of_gpu_to_use_finetuning": 2})
    v = eff.values
    # the user's values win over the model's defaults (the original notebook let epochs 3 become 1)
    assert v["num_train_epochs"] == 3 and eff.source_of("num_train_epochs") == "your spec"
    assert v["learning_rate"] == 2e-5
    # model defaults win over component defaults
    assert v["apply_lora"] == "true" and eff.source_of("apply_lora") == "model default"
    assert v["save_total_limit"] == 1
    # component defaults fill the rest
    assert v["lr_scheduler_type"] == "linear" and eff.source_of("lr_scheduler_type") == "component default"
    assert v["number_of_gpu_to_use_finetuning"] == 2 and eff.source_of("number_of_gpu_to_use_finetuning") == "derived"
    # keys that are not pipeline inputs are dropped, visibly, not passed to the component
    assert eff.dropped_model_defaults == {"learning_rate_min": "1e-6", "learning_rate_max": "1e-4"}
    assert "learning_rate_min" not in v
    row = next(r for r in eff.rows if r.name == "num_train_epochs")
    assert row.overrides == "1 (model default)"


def test_inputs_set_from_other_sections_are_never_in_parameters():
    v = merge_parameters({}, {}).values
    for name, inp in PIPELINE_INPUTS.items():
        if inp.set_from:
            assert name not in v


def test_user_key_outside_the_fetched_component_is_an_error():
    inputs = set(PIPELINE_INPUTS) - {"apply_ort"}
    with pytest.raises(SpecError, match="'apply_ort' is not an input of the chat_completion_pipeline version in use"):
        merge_parameters({"apply_ort": "true"}, {}, component_inputs=inputs)


def test_model_default_outside_the_fetched_component_is_dropped():
    inputs = set(PIPELINE_INPUTS) - {"precision"}
    eff = merge_parameters({}, {"precision": "16"}, component_inputs=inputs)
    assert "precision" not in eff.values
    assert eff.dropped_model_defaults == {"precision": "16"}


def test_display_name_matches_the_original_notebook():
    eff = merge_parameters({"num_train_epochs": 3}, PHI3_DEFAULTS)
    name = pipeline_display_name("Phi-3-mini-4k-instruct", eff.values, gpus_per_node=1)
    assert name == "Phi-3-mini-4k-instruct-ultrachat-bs1-linear-ds2-lora-save_limit1-seqlen-1"


def test_spec_round_trips_through_yaml():
    text = """
model: Phi-3-mini-4k-instruct
data: {source: HuggingFaceH4/ultrachat_200k, fraction: 0.05}
compute: {name: gpu-cluster, size: Standard_NC24ads_A100_v4, max_instances: 2}
parameters: {num_train_epochs: 3, learning_rate: 5.0e-6, lr_scheduler_type: cosine, apply_lora: true}
experiment: chat_completion_Phi-3-mini-4k-instruct
"""
    spec = parse_finetune(text)
    again = parse_finetune(spec.to_yaml())
    assert again == spec
    assert isinstance(spec, FinetuneSpec)
    assert spec.experiment_name == "chat_completion_Phi-3-mini-4k-instruct"


def test_default_experiment_name_follows_the_original():
    assert parse_finetune("model: Phi-3-mini-4k-instruct").experiment_name == "chat_completion_Phi-3-mini-4k-instruct"
    assert parse_finetune("model: microsoft/Phi-3-mini-4k-instruct").experiment_name == "chat_completion_Phi-3-mini-4k-instruct"


def test_data_folder_shorthand(tmp_path):
    (tmp_path / "train_sft.jsonl").write_text("{}\n")
    (tmp_path / "test_sft.jsonl").write_text("{}\n")
    spec = parse_finetune(f"model: m\ndata: {tmp_path}")
    assert spec.data.train.endswith("train_sft.jsonl") and spec.data.test.endswith("test_sft.jsonl")


def test_deploy_defaults_are_the_originals_with_a_vm_live_models_allow():
    spec = parse_deploy("model: my-model:3")
    assert spec.deployment == "demo"
    assert spec.instance_type == "Standard_NC24ads_A100_v4"  # the original's NC6s_v3 is not in Phi-4's list
    assert spec.instance_count == 1
    assert spec.request_timeout_ms == 90000
    assert spec.liveness_initial_delay == 600
    assert spec.traffic == 100
