"""What the system registry ``azureml`` holds: foundation models and the fine-tune pipeline component.

Tags are shaped like the real assets' (string values; lists and dicts as Python literals, which the
notebook parses with ``ast.literal_eval``). The component's input interface is the reference doc's
table for chat_completion_pipeline 0.0.82, kept as JSON in ``assets/``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

FINETUNE_SKUS = ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
                 "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4"]
INFERENCE_SKUS = ["Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3", "Standard_ND40rs_v2",
                  "Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
                  "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4"]

# Newer versions of the tag carry keys that are not pipeline inputs (learning_rate_min/max).
MODEL_SPECIFIC_DEFAULTS = {
    "apply_deepspeed": "true", "deepspeed_stage": "2", "apply_lora": "true", "ignore_mismatched_sizes": "false",
    "num_train_epochs": "1", "per_device_train_batch_size": "1", "per_device_eval_batch_size": "1",
    "learning_rate": "5e-6", "save_total_limit": "1", "learning_rate_min": "1e-6", "learning_rate_max": "5e-5",
}


def _phi3_tags(name: str, context: str) -> dict[str, str]:
    return {
        "author": "Microsoft",
        "license": "mit",
        "task": "chat-completion",
        "displayName": name,
        "hiddenlayerscanned": "",
        "freePlayground": "false",
        "SharedComputeCapacityEnabled": "",
        "languages": "en",
        "inputModalities": "text",
        "outputModalities": "text",
        "maxOutputTokens": context,
        "finetuning_tasks": "chat-completion",
        "finetune_compute_allow_list": repr(FINETUNE_SKUS),
        "inference_compute_allow_list": repr(INFERENCE_SKUS),
        "evaluation_compute_allow_list": repr(INFERENCE_SKUS),
        "model_specific_defaults": repr(MODEL_SPECIFIC_DEFAULTS),
        "Featured": "",
    }


# name -> list of versions, oldest first; the last is what label "latest" resolves to.
MODELS: dict[str, list[dict]] = {
    "Phi-3-mini-4k-instruct": [
        {"version": "14", "created": "2024-09-10T00:00:00Z", "tags": _phi3_tags("Phi-3-mini-4k-instruct", "4096")},
        {"version": "15", "created": "2025-01-20T00:00:00Z", "tags": _phi3_tags("Phi-3-mini-4k-instruct", "4096")},
    ],
    "Phi-3-mini-128k-instruct": [
        {"version": "13", "created": "2025-01-20T00:00:00Z", "tags": _phi3_tags("Phi-3-mini-128k-instruct", "131072")},
    ],
}
DEPRECATION = {"Phi-3-mini-4k-instruct": "Fine-tuning deprecation 2025-06-30, retirement 2025-08-30."}


@lru_cache(maxsize=1)
def pipeline_component_spec() -> dict:
    return json.loads((Path(__file__).parent / "assets" / "chat_completion_pipeline.json").read_text())


COMPONENTS = {"chat_completion_pipeline": ["0.0.80", "0.0.82"]}
