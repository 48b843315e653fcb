"""Which generation engine the local endpoint runs, and building it (light: nothing heavy at import).

- ``transformers``: transformers' continuous batching (:mod:`.continuous`), the default; CPU or GPU.
- ``batcher``: our padded ``model.generate`` batches (:mod:`.generator`), kept to compare against.
- ``vllm``: vLLM, for a machine with a GPU. Not built into this endpoint yet (and so no ``vllm`` extra
  in pyproject.toml): asked for, it is refused in one line that also says what this machine lacks
  for it, so a user never gets a different engine than the one named.
- ``auto``: ``transformers``. It would take ``vllm`` where the extra is installed and a GPU present
  once that engine exists; until then ``auto`` says in the server log why it did not.
"""

from __future__ import annotations

import importlib.util
import logging

ENGINES = ("transformers", "batcher", "vllm")
ENGINE_CHOICES = ("auto", *ENGINES)
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
    if requested == "vllm":
        missing = [what for what, here in (("the vllm package is not installed", installed),
                                           ("this machine has no CUDA GPU", gpu)) if not here]
        why = f" ({'; '.join(missing)})" if missing else ""
        raise EngineUnavailable(f"the vllm engine is not built into the local endpoint yet{why}; "
                                "use --engine transformers (continuous batching, on a GPU too)")
    if installed and gpu:
        log.info("vllm and a GPU are here, but the local endpoint has no vllm engine yet: using transformers")
    return "transformers"


def build_engine(requested: str, model_dir: str, *, max_batch: int | None = None, window_ms: float = 10.0,
                 threads: int | None = None):
    """Load the model into the chosen engine (the server process calls this once)."""
    name = choose_engine(requested)
    if name == "batcher":
        from .generator import Engine

        return Engine(model_dir, max_batch=max_batch or 8, window_ms=window_ms, threads=threads)
    from .continuous import ContinuousEngine

    return ContinuousEngine(model_dir, max_batch=max_batch or 32, threads=threads)
