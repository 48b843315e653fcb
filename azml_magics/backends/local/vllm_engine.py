"""``--engine vllm``: vLLM behind the local endpoint, for a machine with a CUDA GPU (the ``vllm`` extra).

The endpoint keeps everything it adds (Azure's ``/score`` contract, the OpenAI routes, the key, the
limits, the one-line 400s, ``/health``); only generation moves to vLLM's ``AsyncLLM`` (the engine
``vllm serve`` runs: continuous batching, a paged cache on the GPU, CUDA graphs). Why this shape:

- The endpoint's engines are called from the server's event loop and report from their own thread
  (see :mod:`.engine_base`). ``AsyncLLM`` lives on one asyncio loop, so it gets a loop of its own in a
  thread; a request is one task there, and Stop cancels the task, which makes vLLM abort the request
  (``AsyncLLM.generate`` aborts on cancellation) and free its cache blocks at once.
- Prompts go in as token ids (``TokensPrompt``): the chat template, the context check and the
  end-of-turn ids are the endpoint's, the same as on the other engines. vLLM does not detokenize
  (``detokenize=False``); the endpoint decodes as it does for every engine.
- A LoRA adapter (a fine-tune registered with ``merge_lora_weights: false``) is served on its base
  model with vLLM's LoRA support; a merged model is served as it is.

The argument-building functions here are plain functions over our own types, so they are tested on
machines without vLLM; the engine itself runs only where vLLM and a GPU are (``benchmarks/gpu_serve.py``).
Sources: vLLM's ``vllm/v1/engine/async_llm.py`` (``AsyncLLM.from_engine_args``, ``generate``,
``abort``, ``shutdown``) and ``vllm/sampling_params.py`` (``SamplingParams``, ``RequestOutputKind``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from concurrent.futures import Future
from pathlib import Path

from ...scoring import GenerationParams
from .engine_base import BaseEngine, Cancelled, Job

log = logging.getLogger("azml_magics.endpoint")
GPU_MEMORY_SHARE = 0.85  # of the GPU's memory for weights and cache; vLLM's own default is 0.9
DEFAULT_SLOTS = 64


def serving_source(model_dir: str | Path, base_dir: str | Path | None = None) -> dict:
    """What vLLM loads for a registered model folder: ``model`` (weights), ``tokenizer``, and for a LoRA
    adapter folder its ``adapter`` path and ``rank``. ``base_dir`` is the adapter's base model folder
    (the kernel resolves it from the adapter's ``base_model_name_or_path``)."""
    folder = Path(model_dir)
    adapter_config = folder / "adapter_config.json"
    if not adapter_config.is_file():
        return {"model": str(folder), "tokenizer": str(folder), "adapter": None, "rank": None}
    config = json.loads(adapter_config.read_text())
    base = base_dir or config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_config} names no base model (base_model_name_or_path)")
    return {"model": str(base), "tokenizer": str(folder), "adapter": str(folder), "rank": int(config.get("r") or 8)}


def engine_args(source: dict, *, slots: int, context: int | None, seed: int = 0,
                gpu_memory_share: float = GPU_MEMORY_SHARE) -> dict:
    """Keyword arguments for ``vllm.AsyncEngineArgs``."""
    kwargs = {
        "model": source["model"],
        "tokenizer": source["tokenizer"],
        "max_num_seqs": slots,
        "gpu_memory_utilization": gpu_memory_share,
        "seed": seed,
        "enable_prefix_caching": True,  # a chat resends its history: the shared prefix is computed once
        "disable_log_stats": True,
    }
    if context:
        kwargs["max_model_len"] = context
    if source["adapter"]:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=_lora_rank_bucket(source["rank"]))
    return kwargs


def _lora_rank_bucket(rank: int) -> int:
    """vLLM takes ``max_lora_rank`` from a fixed list (8, 16, 32, 64, 128, 256, ...): the smallest that holds it."""
    bucket = 8
    while bucket < rank:
        bucket *= 2
    return bucket


def sampling_kwargs(params: GenerationParams, stop_ids: list[int]) -> dict:
    """Keyword arguments for ``vllm.SamplingParams`` (besides ``output_kind``): vLLM's temperature 0
    is greedy, so a greedy request is exactly greedy here, unlike the transformers engine's 1e-6."""
    return {
        "n": 1,
        "max_tokens": params.max_new_tokens,
        "temperature": 0.0 if params.greedy else float(params.temperature),
        "top_p": 1.0 if params.greedy else float(params.top_p),
        "stop_token_ids": list(stop_ids),
        "detokenize": False,
    }


class VllmEngine(BaseEngine):
    """vLLM's ``AsyncLLM`` on a loop of its own; each request one task there."""

    name = "vllm"
    loads_model = False

    def __init__(self, model_dir: str, *, max_batch: int | None = None, threads: int | None = None,
                 base_dir: str | None = None, gpu_memory_share: float | None = None):
        super().__init__(model_dir, threads=threads)
        from vllm import AsyncEngineArgs, SamplingParams
        from vllm.sampling_params import RequestOutputKind

        self._sampling, self._delta = SamplingParams, RequestOutputKind.DELTA
        self.max_batch = max_batch or DEFAULT_SLOTS
        self.source = serving_source(model_dir, base_dir)
        args = AsyncEngineArgs(**engine_args(self.source, slots=self.max_batch, context=self.context,
                                             gpu_memory_share=gpu_memory_share or GPU_MEMORY_SHARE))
        self._lora = None
        if self.source["adapter"]:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("registered-adapter", 1, self.source["adapter"])
        self._stop_set = set(self.stop_ids)
        self._live: dict[str, tuple[Job, asyncio.Task | None]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-loop", daemon=True)
        self._thread.start()
        self.llm = asyncio.run_coroutine_threadsafe(self._create(args), self._loop).result()

    @staticmethod
    async def _create(args):
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(args)  # on this loop, so its output handler runs here

    # ------------------------------------------------------------------ requests
    def submit(self, job: Job) -> Future:
        if not job.future.set_running_or_notify_cancel():  # its waiter gave up before it was handed over
            job.emit(None)
            return job.future
        if job.cancelled:  # cancelled before it was submitted: never generated
            job.future.set_exception(Cancelled())
            job.emit(None)
            return job.future
        rid = f"azml-{next(self._ids)}"
        job.request_id = rid
        job.on_cancel = self._cancel
        with self._lock:
            self._live[rid] = (job, None)
            size = min(len(self._live), self.max_batch)
            self.largest_batch = max(self.largest_batch, size)
            for other, _task in self._live.values():
                other.batch_size = max(other.batch_size, size)
        asyncio.run_coroutine_threadsafe(self._start(job), self._loop)
        return job.future

    async def _start(self, job: Job) -> None:
        task = asyncio.current_task()
        with self._lock:
            if job.request_id not in self._live:  # cancelled before it reached this loop
                return
            self._live[job.request_id] = (job, task)
        try:
            await self._generate(job)
        except asyncio.CancelledError:  # Stop: AsyncLLM.generate has aborted the request in vLLM
            self._end(job, Cancelled())
        except Exception as exc:  # noqa: BLE001 - any engine failure is this request's one error line
            log.error("generation failed for one request: %s", exc)
            self._end(job, RuntimeError(f"the vllm engine failed: {exc}"))

    async def _generate(self, job: Job) -> None:
        from vllm import TokensPrompt

        params = self._sampling(**sampling_kwargs(job.params, self.stop_ids), output_kind=self._delta)
        stream = self.llm.generate(TokensPrompt(prompt_token_ids=job.prompt), params, job.request_id,
                                   lora_request=self._lora)
        async for output in stream:
            completion = output.outputs[0]
            for token in completion.token_ids:
                if token in self._stop_set:  # vLLM ends on it too; it is not part of the reply's text
                    job.stopped = True
                    break
                job.tokens.append(token)
                job.emit(token)
            if output.finished:  # the stream ends after this output (left to end itself: no abort)
                job.stopped = job.stopped or completion.finish_reason == "stop"
            elif job.stopped:  # a stop token vLLM did not end on (it does): end the request here
                await stream.aclose()
                break
        self._end(job, None)

    def _end(self, job: Job, error: BaseException | None) -> None:
        with self._lock:
            if self._live.pop(job.request_id, None) is None:
                return
            if error is None:
                self.sequences += 1
            if not self._live:
                self.batches += 1
        if not job.future.done():
            if error is None:
                job.future.set_result(job.result())
            else:
                job.future.set_exception(error)
        job.done = True
        job.emit(None)

    def _cancel(self, job: Job) -> None:
        """The client left: cancel its task (vLLM aborts the request and frees its blocks)."""
        with self._lock:
            entry = self._live.get(job.request_id)
            if entry is None:
                return
            self.cancelled_rows += 1
            task = entry[1]
        if task is None:  # not started on the loop yet: it will see it is gone
            self._end(job, Cancelled())
        else:
            self._loop.call_soon_threadsafe(task.cancel)

    # ------------------------------------------------------------------ counters
    def running(self) -> int:
        """Conversations vLLM holds up to its ``max_num_seqs`` (it schedules the rest itself)."""
        return min(len(self._live), self.max_batch)

    def pending(self) -> int:
        return max(0, len(self._live) - self.max_batch)

    def health(self) -> dict:
        return {**super().health(), "slots": self.max_batch, "lora": bool(self._lora)}

    def close(self) -> None:
        self.llm.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
