"""The pipeline parameters mapped onto TRL's SFTConfig and PEFT's LoraConfig."""

from __future__ import annotations

import pytest

from azml_magics.backends.local import LocalBackend, params
from azml_magics.pipeline_inputs import PIPELINE_INPUTS
from azml_magics.plan import merge_parameters


def effective(**user):
    return merge_parameters(user).values


def test_every_pipeline_input_is_mapped_or_listed_as_ignored():
    mapped_elsewhere = {
        # set from the spec's model/data sections, or meaningful as is
        "huggingface_id", "pytorch_model_path", "mlflow_model_path", "train_file_path", "validation_file_path",
        "test_file_path", "train_mltable_path", "validation_mltable_path", "test_mltable_path", "task_name",
        "batch_size", "merge_lora_weights", "resume_from_checkpoint", "metric_for_best_model",
        "trust_remote_code", "ignore_mismatched_sizes", "max_seq_length", "apply_lora", "lora_r", "lora_alpha",
        "lora_dropout", "apply_early_stopping", "early_stopping_patience", "early_stopping_threshold",
    }
    kwargs = params.sft_kwargs(effective(), "/tmp/out", True, 512)
    used = set(kwargs) | mapped_elsewhere | set(params.IGNORED) | set(params.DEVICE_PARAMETERS)
    renamed = {"evaluation_strategy": "eval_strategy", "enable_full_determinism": "full_determinism",
               "evaluation_steps_interval": "eval_steps", "pad_to_max_length": "pad_to_multiple_of"}
    missing = [n for n in PIPELINE_INPUTS if n not in used and renamed.get(n) not in kwargs]
    assert missing == []


def test_values_reach_sftconfig():
    from trl import SFTConfig

    values = effective(num_train_epochs=3, max_steps=20, learning_rate=1e-3, lr_scheduler_type="cosine",
                       warmup_steps=4, weight_decay=0.01, per_device_train_batch_size=4, per_device_eval_batch_size=2,
                       gradient_accumulation_steps=2, seed=7, logging_steps=3, evaluation_strategy="steps",
                       eval_steps=5, save_total_limit=2, optim="adafactor", max_grad_norm=0.5)
    cfg = SFTConfig(**params.sft_kwargs(values, "/tmp/out", True, 256))
    assert (cfg.num_train_epochs, cfg.max_steps, cfg.learning_rate) == (3, 20, 1e-3)
    assert cfg.lr_scheduler_type == "cosine" and cfg.warmup_steps == 4 and cfg.weight_decay == 0.01
    assert (cfg.per_device_train_batch_size, cfg.per_device_eval_batch_size, cfg.gradient_accumulation_steps) == (4, 2, 2)
    assert cfg.seed == 7 and cfg.logging_steps == 3 and cfg.eval_strategy == "steps" and cfg.eval_steps == 5
    assert cfg.save_total_limit == 2 and cfg.optim == "adafactor" and cfg.max_grad_norm == 0.5
    # CPU rules: no bf16/fp16, no packing, no padding-free mode
    assert cfg.bf16 is False and cfg.fp16 is False and cfg.packing is False and cfg.padding_free is False
    assert cfg.max_length == 256 and cfg.train_sampling_strategy == "group_by_length"


def test_sentinels_and_disabled_evaluation():
    values = effective(evaluation_strategy="disable")
    kw = params.sft_kwargs(values, "/tmp/out", True, 512)
    assert kw["eval_strategy"] == "no" and kw["max_steps"] == -1 and kw["save_total_limit"] is None
    assert params.sft_kwargs(effective(), "/tmp/out", False, 512)["eval_strategy"] == "no"  # no eval data


def test_max_length_from_model_when_minus_one():
    assert params.max_length({"max_seq_length": -1}, 4096) == 2048
    assert params.max_length({"max_seq_length": -1}, 1024) == 1024
    assert params.max_length({"max_seq_length": 300}, 1024) == 300


def test_lora_on_off():
    assert params.lora_kwargs(effective(apply_lora="false")) is None
    lora = params.lora_kwargs(effective(apply_lora="true", lora_r=4, lora_alpha=8, lora_dropout=0.1))
    assert lora["r"] == 4 and lora["lora_alpha"] == 8 and lora["lora_dropout"] == 0.1
    assert lora["target_modules"] == "all-linear"  # Phi-3's fused projections have no PEFT default
    from peft import LoraConfig

    LoraConfig(**lora)


def test_early_stopping_needs_matching_save_strategy():
    from trl import SFTConfig

    values = effective(apply_early_stopping="true", early_stopping_patience=2, evaluation_strategy="epoch")
    cfg = SFTConfig(**params.sft_kwargs(values, "/tmp/out", True, 128))
    assert cfg.load_best_model_at_end and cfg.metric_for_best_model == "eval_loss"
    assert params.early_stopping(values) == {"early_stopping_patience": 2, "early_stopping_threshold": 0.0}


@pytest.mark.parametrize("name", ["deepspeed", "apply_ort", "compute_finetune", "shm_size_finetune"])
def test_ignored_parameters_are_listed_with_why(name):
    ignored = LocalBackend().ignored_parameters()
    assert name in ignored and ignored[name]


@pytest.mark.parametrize("name", params.DEVICE_PARAMETERS)
def test_device_parameters_have_a_local_meaning(name):
    assert name not in LocalBackend().ignored_parameters()


def test_notes_for_values_that_change_meaning():
    notes = params.notes(effective(metric_for_best_model="f1"))
    assert any("f1" in n for n in notes)
