"""Map the chat_completion_pipeline parameters onto TRL's SFTConfig and PEFT's LoraConfig.

Pure functions over plain dicts (no heavy imports), so the mapping is tested without training.
Parameters with no meaning locally are listed in ``IGNORED`` with why; they are shown to the user,
never dropped silently. The device ones (precision, GPUs, nodes, DeepSpeed) are read by
``device.plan_launch``, which replaces the CPU settings below with the device's (``device.sft_kwargs``).
"""

from __future__ import annotations

# Read by device.plan_launch (their local meaning), so not ignored: precision, number_of_gpu_to_use_finetuning,
# num_nodes_finetune, apply_deepspeed, deepspeed_stage.
DEVICE_PARAMETERS = ("precision", "number_of_gpu_to_use_finetuning", "num_nodes_finetune", "apply_deepspeed",
                     "deepspeed_stage")

IGNORED: dict[str, str] = {
    "deepspeed": "a DeepSpeed config file: locally the ZeRO config is built from deepspeed_stage",
    "apply_ort": "ONNX Runtime training is an Azure GPU option",
    "shm_size_finetune": "container shared memory: no container locally",
    "finetune_config_path": "extra Azure fine-tune config file: not read locally",
    "evaluation_config": "the Azure model-evaluation step does not run locally",
    "evaluation_config_params": "the Azure model-evaluation step does not run locally",
    "compute_model_import": "compute: runs on this machine",
    "compute_preprocess": "compute: runs on this machine",
    "compute_finetune": "compute: runs on this machine",
    "compute_model_evaluation": "compute: runs on this machine",
    "instance_type_model_import": "compute: runs on this machine",
    "instance_type_preprocess": "compute: runs on this machine",
    "instance_type_finetune": "compute: runs on this machine",
    "instance_type_model_evaluation": "compute: runs on this machine",
}

_SCHEDULERS = {"cosine_with_restarts", "polynomial", "linear", "cosine", "constant", "constant_with_warmup"}


def _true(values: dict, key: str, default: str = "false") -> bool:
    return str(values.get(key, default)).lower() == "true"


def _sentinel(value, none_below: int = 1):
    """-1 style "not set" values -> None."""
    if value is None:
        return None
    return None if int(value) < none_below else int(value)


def max_length(values: dict, model_max: int | None) -> int:
    """max_seq_length, or the model's maximum for -1 (capped at 2048 on a CPU)."""
    asked = _sentinel(values.get("max_seq_length", -1))
    limit = model_max if model_max and model_max < 1_000_000 else 2048
    return min(asked, limit) if asked else min(limit, 2048)


def sft_kwargs(values: dict, output_dir: str, has_eval: bool, seq_len: int, group_by_length: bool = True) -> dict:
    """SFTConfig keyword arguments for the effective parameters ``values``."""
    eval_strategy = {"epoch": "epoch", "steps": "steps", "disable": "no"}[str(values.get("evaluation_strategy", "epoch"))]
    if not has_eval:
        eval_strategy = "no"
    eval_steps = int(values.get("eval_steps", 500))
    interval = float(values.get("evaluation_steps_interval", 0.0) or 0.0)
    if eval_strategy == "steps" and 0 < interval < 1:
        eval_steps = interval  # a fraction of the total steps, as transformers reads a float below 1
    scheduler = str(values.get("lr_scheduler_type", "linear"))
    assert scheduler in _SCHEDULERS, scheduler
    early = _true(values, "apply_early_stopping") and eval_strategy != "no"
    kwargs = dict(
        output_dir=output_dir,
        num_train_epochs=float(values.get("num_train_epochs", 1)),
        max_steps=int(values.get("max_steps", -1)) if int(values.get("max_steps", -1)) > 0 else -1,
        learning_rate=float(values.get("learning_rate", 2e-5)),
        lr_scheduler_type=scheduler,
        warmup_steps=int(values.get("warmup_steps", 0)),
        weight_decay=float(values.get("weight_decay", 0.0)),
        adam_beta1=float(values.get("adam_beta1", 0.9)),
        adam_beta2=float(values.get("adam_beta2", 0.999)),
        adam_epsilon=float(values.get("adam_epsilon", 1e-8)),
        max_grad_norm=float(values.get("max_grad_norm", 1.0)),
        optim=local_optim(values),
        per_device_train_batch_size=int(values.get("per_device_train_batch_size", 1)),
        per_device_eval_batch_size=int(values.get("per_device_eval_batch_size", 1)),
        gradient_accumulation_steps=int(values.get("gradient_accumulation_steps", 1)),
        eval_accumulation_steps=_sentinel(values.get("eval_accumulation_steps", -1)),
        auto_find_batch_size=_true(values, "auto_find_batch_size"),
        seed=int(values.get("seed", 42)),
        full_determinism=_true(values, "enable_full_determinism"),
        dataloader_num_workers=int(values.get("dataloader_num_workers", 0)),
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        logging_strategy=str(values.get("logging_strategy", "steps")),
        logging_steps=int(values.get("logging_steps", 10)),
        logging_first_step=True,
        save_strategy=eval_strategy if early else "epoch",
        save_steps=eval_steps,
        save_total_limit=_sentinel(values.get("save_total_limit", -1)),
        save_only_model=True,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        # The CPU settings; device.sft_kwargs replaces these for a GPU. No packing (it mixes rows).
        use_cpu=True,
        bf16=False,
        fp16=False,
        packing=False,
        activation_checkpointing=False,
        max_length=seq_len,
        pad_to_multiple_of=seq_len if _true(values, "pad_to_max_length") else None,
        dataloader_pin_memory=False,
        report_to="none",
        disable_tqdm=True,
        # The data is tokenized (with the assistant mask) by our preprocess step.
        assistant_only_loss=False,
        # trainer.build_trainer implements the grouping itself (batching.py: random batches split
        # into length-sorted micro-batches), so transformers' own LengthGroupedSampler is not used.
        train_sampling_strategy="group_by_length" if group_by_length else "random",
    )
    return kwargs


def early_stopping(values: dict) -> dict | None:
    """EarlyStoppingCallback arguments, or None when early stopping is off."""
    if not _true(values, "apply_early_stopping") or str(values.get("evaluation_strategy", "epoch")) == "disable":
        return None
    return dict(
        early_stopping_patience=int(values.get("early_stopping_patience", 1)),
        early_stopping_threshold=float(values.get("early_stopping_threshold", 0.0)),
    )


def lora_kwargs(values: dict) -> dict | None:
    """LoraConfig keyword arguments, or None for a full fine-tune."""
    if not _true(values, "apply_lora"):
        return None
    return dict(
        r=int(values.get("lora_r", 8)),
        lora_alpha=int(values.get("lora_alpha", 128)),
        lora_dropout=float(values.get("lora_dropout", 0.0)),
        # Phi-3 fuses qkv_proj and gate_up_proj; PEFT has no default targets for it.
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def load_kwargs(values: dict) -> dict:
    return dict(
        trust_remote_code=_true(values, "trust_remote_code"),
        ignore_mismatched_sizes=_true(values, "ignore_mismatched_sizes"),
    )


# The same AdamW update in one fused kernel per step: transformers 5's own default optimizer (on CPU, CUDA
# and MPS with torch >= 2.4). Azure's component passes "adamw_torch"; run as it is, the optimizer step
# cost a 28M-parameter model about a fifth of its training time on a CPU (benchmarks/local_train.py).
_FUSED = {"adamw_torch": "adamw_torch_fused"}


def local_optim(values: dict) -> str:
    asked = str(values.get("optim", "adamw_torch"))
    return _FUSED.get(asked, asked)


def notes(values: dict) -> list[str]:
    """Parameters that change meaning locally, for the log."""
    out = []
    asked = str(values.get("optim", "adamw_torch"))
    if local_optim(values) != asked:
        out.append(f"optim={asked} runs as {local_optim(values)} (the same update, fused into one kernel)")
    metric = str(values.get("metric_for_best_model", "loss"))
    if metric != "loss":
        out.append(f"metric_for_best_model={metric} has no meaning for chat fine-tuning locally; eval_loss is used")
    if _true(values, "apply_early_stopping") and str(values.get("evaluation_strategy", "epoch")) == "disable":
        out.append("apply_early_stopping needs evaluation; it is off because evaluation_strategy=disable")
    return out
