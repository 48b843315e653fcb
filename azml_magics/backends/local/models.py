"""Which model a spec names on the local backend, its CPU-sized defaults, and loading it.

A spec's ``model:`` may be the built-in ``azml-tiny-phi3``, an Azure registry name with a known
Hugging Face twin (``Phi-3-mini-4k-instruct``), any Hugging Face id, or a local folder. Everything
is loaded with ``transformers``, the same path users take by hand. Hub problems are found before a
job is created and reported in one line that names the tiny model as the offline way out.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from ...errors import AzmlError, NotFound
from ...waits import hf_bars_off, wait
from ..base import ModelInfo
from . import tiny_model

HUB = "huggingface.co"
TASK = "chat-completion"

# Azure registry names -> Hugging Face ids (the local backend's equivalent of the azureml registry).
ALIASES = {
    "phi-3-mini-4k-instruct": "microsoft/Phi-3-mini-4k-instruct",
    "phi-3-mini-128k-instruct": "microsoft/Phi-3-mini-128k-instruct",
    "phi-3.5-mini-instruct": "microsoft/Phi-3.5-mini-instruct",
    "phi-4-mini-instruct": "microsoft/Phi-4-mini-instruct",
}

# Defaults that make sense on a CPU: LoRA, short sequences, a learning rate LoRA needs.
CPU_DEFAULTS: dict[str, object] = {
    "apply_lora": "true",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "learning_rate": 2e-4,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "max_seq_length": 512,
    "num_train_epochs": 1,
    "logging_steps": 10,
}

# The tiny model learns from random weights in a minute or two: full fine-tune, high learning rate.
TINY_DEFAULTS: dict[str, object] = {
    "apply_lora": "false",
    "learning_rate": 3e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 5,
    "num_train_epochs": 3,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "max_seq_length": 512,
    "logging_steps": 5,
    "evaluation_strategy": "epoch",
    "save_total_limit": 1,
}


@dataclass
class ResolvedModel:
    """Where a spec's model comes from: ``tiny``, ``hub`` or ``folder``."""

    spec: str
    kind: str
    ref: str  # a Hugging Face id or a folder path
    name: str  # short name for display names and experiments
    version: str = "1"

    @property
    def load_path(self) -> str:
        """What ``from_pretrained`` gets (builds the tiny model on first use)."""
        if self.kind == "tiny":
            return str(tiny_model.ensure_tiny_model())
        return self.ref


def _strip_azure(name: str) -> tuple[str, str | None]:
    """``azureml://registries/r/models/N/versions/V`` or ``azureml:N:V`` -> (N, V)."""
    m = re.fullmatch(r"azureml://registries/[^/]+/models/([^/]+)(?:/versions/([^/]+)|/labels/[^/]+)?", name)
    if m:
        return m.group(1), m.group(2)
    if name.startswith("azureml:"):
        parts = name[len("azureml:"):].split(":")
        return parts[0], parts[1] if len(parts) > 1 else None
    return name, None


def resolve(spec_model: str) -> ResolvedModel:
    """Map a spec's ``model:`` onto something ``transformers`` can load; one-line error otherwise."""
    text = str(spec_model).strip()
    if not text:
        raise AzmlError(f"the spec's model is empty; name a model, e.g. 'model: {tiny_model.NAME}'.")
    name, _version = _strip_azure(text)
    if name.lower() == tiny_model.NAME:
        return ResolvedModel(text, "tiny", tiny_model.NAME, tiny_model.NAME, tiny_model.VERSION)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise AzmlError(
                f"model folder {name} has no config.json; point model: at a Hugging Face model folder "
                "(from save_pretrained)."
            )
        return ResolvedModel(text, "folder", str(path.resolve()), path.resolve().name)
    if name.startswith((".", "/", "~")):
        raise NotFound(f"model folder {name} does not exist; check the path, or use model: {tiny_model.NAME}.")
    hub_id = ALIASES.get(name.lower(), name)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", hub_id):
        raise NotFound(
            f"unknown model '{name}' on the local backend; give a Hugging Face id (org/name), a local folder, "
            f"or {tiny_model.NAME} (the built-in tiny model); known names: {', '.join(sorted(ALIASES))}."
        )
    return ResolvedModel(text, "hub", hub_id, hub_id.split("/")[-1])


def _offline_hint(ref: str, why: str) -> AzmlError:
    return AzmlError(
        f"cannot fetch model '{ref}' from the Hugging Face hub ({why}); connect to the internet, log in with "
        f"`hf auth login` for gated models, or use model: {tiny_model.NAME} (the built-in tiny model, no download)."
    )


def _in_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(hit, str)


def check_available(model: ResolvedModel, timeout: float = 3.0) -> None:
    """Fail fast, before a job exists, when a hub model can neither be found in the cache nor fetched."""
    if model.kind != "hub" or _in_cache(model.ref):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise _offline_hint(model.ref, "HF_HUB_OFFLINE is set and it is not in the local cache")
    try:
        socket.create_connection((HUB, 443), timeout=timeout).close()
    except OSError as exc:
        raise _offline_hint(model.ref, f"{HUB} is unreachable: {exc.strerror or exc}") from None
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(model.ref, timeout=timeout * 3)
    except GatedRepoError:
        raise _offline_hint(model.ref, "it is gated and you are not logged in") from None
    except RepositoryNotFoundError:
        raise NotFound(
            f"no model '{model.ref}' on the Hugging Face hub; check the id, or use model: {tiny_model.NAME}."
        ) from None
    except Exception as exc:  # network trouble of any kind: same advice
        raise _offline_hint(model.ref, str(exc).splitlines()[0][:120]) from None


def model_info(spec_model: str) -> ModelInfo:
    """The local backend's ModelInfo: defaults sized for a CPU, no allow lists."""
    model = resolve(spec_model)
    check_available(model)
    tiny = model.kind == "tiny"
    return ModelInfo(
        name=model.name,
        version=model.version,
        id=f"local://{model.ref}" if model.kind != "folder" else model.ref,
        tasks=[TASK],
        finetune_allow_list=None,
        inference_allow_list=None,
        model_defaults=dict(TINY_DEFAULTS if tiny else CPU_DEFAULTS),
        description=(
            "built-in tiny Phi-3 (random weights, for tests and demos)" if tiny else f"{model.kind}: {model.ref}"
        ),
        tags={"source": model.kind, "ref": model.ref},
    )


def load_tokenizer(model: ResolvedModel, trust_remote_code: bool = False):
    path = model.load_path  # the tiny model is built first, under its own wait line
    # the first load in a kernel imports transformers: seconds the user sees counted
    with wait(f"Loading the tokenizer of {model.spec}"):
        from transformers import AutoTokenizer

        try:
            with hf_bars_off():
                tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise _offline_hint(model.ref, str(exc).splitlines()[0][:160]) from None
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        # A pad equal to the end token would be masked out of the labels: the model would never stop.
        if tok.unk_token is not None and tok.unk_token_id != tok.eos_token_id:
            tok.pad_token = tok.unk_token
        else:
            tok.add_special_tokens({"pad_token": "<|azml_pad|>"})
    if not tok.chat_template:
        raise AzmlError(
            f"model '{model.spec}' has no chat template, so conversations cannot be formatted; use a chat "
            f"(instruct) model or {tiny_model.NAME}."
        )
    return tok


def load_model(model: ResolvedModel, tokenizer=None, dtype: str = "float32", **kwargs):
    """``kwargs`` go to ``from_pretrained`` (trust_remote_code, attn_implementation, device_map, ...);
    a ``quantization_config`` dict becomes a BitsAndBytesConfig (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM

    if isinstance(kwargs.get("quantization_config"), dict):
        from transformers import BitsAndBytesConfig

        q = dict(kwargs["quantization_config"])
        q["bnb_4bit_compute_dtype"] = getattr(torch, q.get("bnb_4bit_compute_dtype", "bfloat16"))
        kwargs["quantization_config"] = BitsAndBytesConfig(**q)
    path = model.load_path
    try:
        with wait(f"Loading model {model.spec}"), hf_bars_off():
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **kwargs)
    except OSError as exc:
        raise _offline_hint(model.ref, str(exc).splitlines()[0][:160]) from None
    if tokenizer is not None and len(tokenizer) > lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(len(tokenizer))
    if tokenizer is not None:
        lm.config.pad_token_id = tokenizer.pad_token_id
    return lm
