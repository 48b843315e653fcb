"""Which generation engine the local endpoint runs, and building it (light: nothing heavy at import).

- ``transformers``: transformers' continuous batching (:mod:`.continuous`), the default; CPU or GPU.
- ``batcher``: our padded ``model.generate`` batches (:mod:`.generator`), kept to compare against.
- ``vllm``: vLLM (:mod:`.vllm_engine`), for a machine with a CUDA GPU and the ``vllm`` extra. Asked for
  where it cannot run, it is refused in one line that says what this machine lacks, before the
  endpoint starts, so a user never gets a different engine than the one named.
- ``auto``: ``vllm`` where the extra is installed and a CUDA GPU is present, else ``transformers``.
"""

from __future__ import annotations

import importlib.util
import logging

from ...spec_local import ENGINES as ENGINE_CHOICES

ENGINES = ENGINE_CHOICES[1:]
log = logging.getLogger("azml_magics.endpoint")


class EngineUnavailable(Exception):
    """The engine asked for cannot run here; the message says why and what to do instead."""


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def gpu_present() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_engine(requested: str = "auto", *, installed: bool | None = None, gpu: bool | None = None) -> str:
    """The engine to run for ``requested``, or :class:`EngineUnavailable` (one line) if it cannot run."""
    if requested not in ENGINE_CHOICES:
        raise EngineUnavailable(f"unknown engine '{requested}'; choose one of {', '.join(ENGINE_CHOICES)}")
    if requested in ("transformers", "batcher"):
        return requested
    installed = vllm_installed() if installed is None else installed
    gpu = gpu_present() if gpu is None else gpu
    if requested == "vllm" and not (installed and gpu):
        missing = [what for what, here in (("the vllm package is not installed", installed),
                                           ("this machine has no CUDA GPU", gpu)) if not here]
        fix = "pip install 'azml-magics[vllm]' on a machine with a CUDA GPU" if not installed else "run on a CUDA GPU"
        raise EngineUnavailable(f"the vllm engine cannot run here ({'; '.join(missing)}): {fix}, "
                                "or use engine transformers (continuous batching, on a GPU too)")
    return "vllm" if installed and gpu else "transformers"


def build_engine(requested: str, model_dir: str, *, max_batch: int | None = None, window_ms: float = 10.0,
                 threads: int | None = None, base_dir: str | None = None, gpu_memory_share: float | None = None):
    """Load the model into the chosen engine (the server process calls this once). ``base_dir``: the
    base model folder of a LoRA adapter folder (only the vllm engine serves an adapter unmerged);
    ``gpu_memory_share``: vllm's share of the GPU's memory (two endpoints on one GPU need less each)."""
    name = choose_engine(requested)
    if name == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine(model_dir, max_batch=max_batch, threads=threads, base_dir=base_dir,
                          gpu_memory_share=gpu_memory_share)
    if name == "batcher":
        from .generator import Engine

        return Engine(model_dir, max_batch=max_batch or 8, window_ms=window_ms, threads=threads)
    from .continuous import ContinuousEngine

    return ContinuousEngine(model_dir, max_batch=max_batch or 32, threads=threads)
