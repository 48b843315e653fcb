"""What the Hugging Face hub gives for a registry model whose card names its Hugging Face id: its tokenizer
(data checks count tokens with it; the estimate counts the training tokens)."""

from __future__ import annotations


def load_tokenizer(model_name: str, hf_id: str):
    """The tokenizer from the Hugging Face cache, else the hub (unless HF_HUB_OFFLINE=1); None when neither has it."""
    import os

    from ...waits import hf_bars_off, wait

    with wait(f"Loading the tokenizer of {model_name} ({hf_id})") as waiting:
        try:
            from transformers import AutoTokenizer
        except ImportError:
            return None
        for local_only in (True, False):
            if not local_only and os.environ.get("HF_HUB_OFFLINE") == "1":
                break
            try:
                with hf_bars_off():
                    return AutoTokenizer.from_pretrained(hf_id, local_files_only=local_only)
            except Exception:
                continue
        waiting.end_as("failed", "not cached here and not reachable: rows checked without token counts")
    return None
