"""The input interface of the registry component ``chat_completion_pipeline`` (version 0.0.82).

This table is the authority the fine-tune spec is checked against before anything is submitted.
The Azure backend narrows it to the inputs of the component it actually fetched; the local
backend uses it as is. ``minimum`` is ours: the component declares none, but the fine-tune step
fails (late, on a GPU) for values below these.
"""

from __future__ import annotations

from dataclasses import dataclass

BOOL_VALUES = ("true", "false")


@dataclass(frozen=True)
class PipelineInput:
    name: str
    type: str  # string | integer | number | uri_file | mltable | mlflow_model | custom_model
    default: object = None
    enum: tuple[str, ...] = ()
    optional: bool = True
    minimum: float | None = None
    # -1 (or another sentinel) is allowed besides values >= minimum
    sentinel: float | None = None
    # set by azml_magics from another part of the spec; users do not write these under parameters
    set_from: str | None = None
    help: str = ""

    @property
    def is_bool(self) -> bool:
        return self.enum == BOOL_VALUES

    @property
    def is_asset(self) -> bool:
        return self.type in ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model")


def _i(name, type, default=None, enum=(), optional=True, minimum=None, sentinel=None, set_from=None, help=""):
    return PipelineInput(name, type, default, tuple(enum), optional, minimum, sentinel, set_from, help)


_B = BOOL_VALUES

PIPELINE_INPUTS: dict[str, PipelineInput] = {
    p.name: p
    for p in [
        _i("instance_type_model_import", "string", "Standard_d12_v2", set_from="compute"),
        _i("instance_type_preprocess", "string", "Standard_d12_v2", set_from="compute"),
        _i("instance_type_finetune", "string", "Standard_nc24rs_v3", set_from="compute"),
        _i("instance_type_model_evaluation", "string", "Standard_nc24rs_v3", set_from="compute"),
        _i("shm_size_finetune", "string", "5g", help="shared memory of the fine-tune container"),
        _i("num_nodes_finetune", "integer", 1, minimum=1, help="nodes for the fine-tune step"),
        _i("number_of_gpu_to_use_finetuning", "integer", 1, minimum=1, help="GPUs per node (default: the VM size's GPU count)"),
        _i("huggingface_id", "string", None, set_from="model"),
        _i("pytorch_model_path", "custom_model", None, set_from="model"),
        _i("mlflow_model_path", "mlflow_model", None, set_from="model"),
        _i("finetune_config_path", "uri_file", None),
        _i("trust_remote_code", "string", "false", _B),
        _i("task_name", "string", "ChatCompletion", ("ChatCompletion",), optional=False),
        _i("batch_size", "integer", 1000, minimum=1, help="preprocessing batch size"),
        _i("pad_to_max_length", "string", "false", _B),
        _i("max_seq_length", "integer", -1, minimum=1, sentinel=-1, help="-1: the model's maximum"),
        _i("train_file_path", "uri_file", None, set_from="data"),
        _i("validation_file_path", "uri_file", None, set_from="data"),
        _i("test_file_path", "uri_file", None, set_from="data"),
        _i("train_mltable_path", "mltable", None, set_from="data"),
        _i("validation_mltable_path", "mltable", None, set_from="data"),
        _i("test_mltable_path", "mltable", None, set_from="data"),
        _i("apply_lora", "string", "false", _B),
        _i("merge_lora_weights", "string", "true", _B),
        _i("lora_alpha", "integer", 128, minimum=1),
        _i("lora_r", "integer", 8, minimum=1),
        _i("lora_dropout", "number", 0.0, minimum=0.0),
        _i("num_train_epochs", "integer", 1, minimum=1),
        _i("max_steps", "integer", -1, minimum=1, sentinel=-1, help="-1: train num_train_epochs"),
        _i("per_device_train_batch_size", "integer", 1, minimum=1),
        _i("per_device_eval_batch_size", "integer", 1, minimum=1),
        _i("auto_find_batch_size", "string", "false", _B),
        _i("optim", "string", "adamw_torch", ("adamw_torch", "adafactor")),
        _i("learning_rate", "number", 2e-05, minimum=0.0),
        _i("warmup_steps", "integer", 0, minimum=0),
        _i("weight_decay", "number", 0.0, minimum=0.0),
        _i("adam_beta1", "number", 0.9, minimum=0.0),
        _i("adam_beta2", "number", 0.999, minimum=0.0),
        _i("adam_epsilon", "number", 1e-8, minimum=0.0),
        _i("gradient_accumulation_steps", "integer", 1, minimum=1),
        _i("eval_accumulation_steps", "integer", -1, minimum=1, sentinel=-1),
        _i(
            "lr_scheduler_type",
            "string",
            "linear",
            ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"),
        ),
        _i("precision", "string", "32", ("32", "16")),
        _i("seed", "integer", 42, minimum=0),
        _i("enable_full_determinism", "string", "false", _B),
        _i("dataloader_num_workers", "integer", 0, minimum=0),
        _i("ignore_mismatched_sizes", "string", "false", _B),
        _i("max_grad_norm", "number", 1.0, minimum=0.0),
        _i("evaluation_strategy", "string", "epoch", ("epoch", "steps", "disable")),
        _i("evaluation_steps_interval", "number", 0.0, minimum=0.0),
        _i("eval_steps", "integer", 500, minimum=1),
        _i("logging_strategy", "string", "steps", ("epoch", "steps")),
        _i("logging_steps", "integer", 10, minimum=1),
        _i("metric_for_best_model", "string", "loss", ("loss", "f1", "exact")),
        _i("resume_from_checkpoint", "string", "false", _B),
        _i("save_total_limit", "integer", -1, minimum=1, sentinel=-1, help="-1: keep every checkpoint"),
        _i("apply_early_stopping", "string", "false", _B),
        _i("early_stopping_patience", "integer", 1, minimum=1),
        _i("early_stopping_threshold", "number", 0.0, minimum=0.0),
        _i("apply_deepspeed", "string", "false", _B),
        _i("deepspeed", "uri_file", None),
        _i("deepspeed_stage", "string", "2", ("2", "3")),
        _i("apply_ort", "string", "false", _B),
        _i("evaluation_config", "uri_file", None),
        _i("evaluation_config_params", "string", None),
        _i("compute_model_import", "string", "serverless", set_from="compute"),
        _i("compute_preprocess", "string", "serverless", set_from="compute"),
        _i("compute_finetune", "string", "serverless", set_from="compute"),
        _i("compute_model_evaluation", "string", "serverless", set_from="compute"),
    ]
}

# Upper bounds where a value above them is certainly a mistake.
MAXIMUM: dict[str, float] = {
    "lora_dropout": 1.0,
    "adam_beta1": 1.0,
    "adam_beta2": 1.0,
    "weight_decay": 1.0,
    "learning_rate": 1.0,
}

# Minimums that are exclusive (the value must be strictly greater).
EXCLUSIVE_MINIMUM = {"learning_rate", "adam_epsilon"}

# The parameters users set most; forms show these first.
MAIN_PARAMETERS = (
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "apply_lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "max_seq_length",
    "precision",
    "seed",
)


def user_settable() -> list[str]:
    """Names a user may write under ``parameters:``."""
    return [n for n, p in PIPELINE_INPUTS.items() if p.set_from is None]


def parameter_table():
    """Every input a user may set (``%azml_finetune --list-parameters``): type, default, allowed, minimum."""
    from .display import Table

    rows = [[p.name, p.type, p.default, "|".join(p.enum), p.minimum if p.minimum is not None else "", p.help]
            for p in PIPELINE_INPUTS.values() if not p.set_from]
    return Table(["parameter", "type", "default", "allowed", "minimum", "note"], rows,
                 title="chat_completion_pipeline parameters")
