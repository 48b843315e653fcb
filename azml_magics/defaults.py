"""The names and defaults every layer shares, written once.

Why a module of its own: the magics, the API, the forms, the data tools and both backends all need
the same home folder, dataset, splits and names, and copies drift. Constants only, stdlib only:
``%load_ext`` may read it.
"""

from __future__ import annotations

import os
import time

# Where state, local jobs, the MLflow store and endpoint records live.
HOME_ENV = "AZML_MAGICS_HOME"
DEFAULT_HOME = "~/.azml_magics"

# The original notebook's dataset, its splits and the folder %azml_data prepare writes.
DATASET_SOURCE = "HuggingFaceH4/ultrachat_200k"
SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")
TRAIN_SPLIT, TEST_SPLIT = "train_sft", "test_sft"
DATA_FOLDER = "ultrachat_200k_dataset"
PREPARED_RECORD = "last_prepared.json"  # under home: where %azml_data prepare last wrote (form defaults)

# Azure credentials a user can name (%azml_connect --credential, the connect form); "auto" is the
# notebook's order: DefaultAzureCredential, then the interactive browser.
CREDENTIALS = ("auto", "default", "cli", "device-code", "managed-identity", "browser")

# The parameters %azml_jobs shows per job and compares (kept in the state record at submit).
KEY_PARAMETERS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                  "gradient_accumulation_steps", "max_seq_length", "apply_lora", "lora_r", "lora_alpha", "seed")

# The notebook's names for what a fine-tune leaves behind.
ENDPOINT_PREFIX = "ultrachat-completion"
MODEL_NAME_SUFFIX = "-ultrachat-200k"


def default_home() -> str:
    """``$AZML_MAGICS_HOME``, else ``~/.azml_magics`` (not expanded: callers expand it)."""
    return os.environ.get(HOME_ENV) or DEFAULT_HOME


def default_endpoint_name() -> str:
    """The notebook's endpoint name: ``ultrachat-completion-<unix time>``."""
    return f"{ENDPOINT_PREFIX}-{int(time.time())}"
