"""A stand-in for a big model in a smoke run: its own config and tokenizer, two layers, random weights.

Only ``config.json`` and the tokenizer files are read (from the hub cache or a local folder; the
weights are never fetched). The architecture class, vocabulary, chat template and special tokens
stay the model's own, so template, data and output-format mistakes show up as they would on Azure;
the width is cut so a few optimizer steps take seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

LAYERS = 2
HEADS = 4
HEAD_DIM = 16


def _shrink_rope(rope, head_dim: int):
    """Per-dimension rope factors (Phi-3 longrope: short_factor/long_factor) cut to the new head size."""
    if not isinstance(rope, dict):
        return rope
    out = dict(rope)
    for key in ("short_factor", "long_factor"):
        if isinstance(out.get(key), list):
            out[key] = out[key][: head_dim // 2]
    return out


def shrink(spec_model: str, out: Path, seed: int = 0) -> Path:
    """Write the shrunk model (config, random weights, the model's own tokenizer) into ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from . import models

    resolved = models.resolve(spec_model)
    models.check_available(resolved)
    config = AutoConfig.from_pretrained(resolved.load_path)
    tokenizer = models.load_tokenizer(resolved)
    text = getattr(config, "text_config", None) or config
    heads = getattr(text, "num_attention_heads", HEADS) or HEADS
    kv = getattr(text, "num_key_value_heads", heads) or heads
    text.num_hidden_layers = min(LAYERS, getattr(text, "num_hidden_layers", LAYERS))
    text.num_attention_heads = HEADS
    text.num_key_value_heads = max(1, HEADS * kv // heads)  # keep grouped-query attention's ratio
    text.hidden_size = HEADS * HEAD_DIM
    if hasattr(text, "head_dim"):
        text.head_dim = HEAD_DIM
    if hasattr(text, "intermediate_size"):
        text.intermediate_size = 4 * text.hidden_size
    for key in ("rope_scaling", "rope_parameters"):
        if getattr(text, key, None):
            setattr(text, key, _shrink_rope(getattr(text, key), HEAD_DIM))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
