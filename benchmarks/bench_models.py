"""The benchmarks' Phi-3-architecture model of about 28M parameters, built offline, in one place.

The tiny model (165k parameters) measures fixed costs; this one is where compute dominates, as on a
real model: hidden 512, 8 layers, the tiny model's tokenizer (1,024 tokens), seeded random weights.
"""

from __future__ import annotations

from pathlib import Path

PHI3_SHAPE = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=8, max_position_embeddings=2048)


def build_phi3(folder: Path, shape: dict | None = None, dtype: str = "float32") -> Path:
    """The model in FOLDER (built once; a finished build leaves BUILD_OK): PHI3_SHAPE unless ``shape``
    (the GPU benchmarks build larger ones), saved in ``dtype``."""
    if (folder / "BUILD_OK").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Phi3Config, Phi3ForCausalLM

    from azml_magics.backends.local import tiny_model

    tok = AutoTokenizer.from_pretrained(tiny_model.ensure_tiny_model())
    pad, end = tok.convert_tokens_to_ids(tiny_model.PAD), tok.convert_tokens_to_ids(tiny_model.END)
    torch.manual_seed(0)
    model = Phi3ForCausalLM(Phi3Config(vocab_size=len(tok), bos_token_id=pad, eos_token_id=end, pad_token_id=pad,
                                       tie_word_embeddings=True, **(shape or PHI3_SHAPE)))
    model = model.to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(eos_token_id=[end, pad], pad_token_id=pad, bos_token_id=pad)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "BUILD_OK").write_text("1\n")
    return folder


def parameters(folder: Path) -> int:
    """Parameters in the model's safetensors files (without loading it)."""
    from safetensors import safe_open

    total = 0
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                n = 1
                for dim in st.get_slice(k).get_shape():
                    n *= dim
                total += n
    return total
