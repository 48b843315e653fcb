"""Continuous batching for the local endpoint: ``--engine transformers`` (the default).

transformers' ``ContinuousBatchingManager`` (the paged-cache engine behind ``transformers serve
--continuous-batching``) runs the model in its own thread; requests join and leave the running batch
at every step. What this module adds on top of it, and why:

- Per-request sampling. The manager takes ``max_new_tokens`` and ``eos_token_id`` per request and,
  with ``per_request_processors=True``, ``temperature`` and ``top_p`` (and ``top_k``); ``do_sample`` is
  one setting for the whole manager (``transformers serve`` shares the first request's sampling
  settings with every later one). So the manager always samples, and a greedy request is sampled at
  temperature 1e-6: the arg-max token has all the probability unless another logit is within ~1e-5.
- Slots: at most ``max_batch`` conversations are handed to the manager; the rest wait here, so
  ``pending`` means "waiting for a slot", the cache is sized for the slots, and a cancelled request
  (its client left) gives its slot to the next one at once (the manager drops it at its next step).
- ``/health``'s counters keep the batcher's meaning: ``batches`` counts busy periods (the engine went
  from generating to idle, as a padded batch does when it ends), ``sequences`` finished conversations,
  ``largest_batch`` the most generated together; ``engine_active`` is the manager's own count of
  requests it still holds (its scheduler's active and waiting requests).
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import threading
from concurrent.futures import Future

from .cb_warpers import use_fast_sampling, use_row_top_p
from .engine_base import BaseEngine, Cancelled, Job

log = logging.getLogger("azml_magics.endpoint")
GREEDY_TEMPERATURE = 1e-6
PAGE_SIZE = 64
MAX_BATCH_TOKENS = 512  # prompt tokens a step may take: bounds the step time others' tokens wait for
CACHE_SHARE_OF_RAM = 0.125  # the paged cache is allocated at start; never more than this share of memory


def cache_pages(config, slots: int, cache_tokens: int | None = None) -> int:
    """Pages for every slot at the model's full context, capped by a share of the machine's memory,
    and never fewer than one full-context request needs (the cache is allocated whole at start)."""
    import psutil

    cfg = config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    bytes_per_token = cfg.num_hidden_layers * 2 * heads * head_dim * 4  # keys and values, float32
    context = min(getattr(cfg, "max_position_embeddings", None) or 2048, 8192)
    wanted = cache_tokens or slots * context
    affordable = int(psutil.virtual_memory().total * CACHE_SHARE_OF_RAM) // bytes_per_token
    return max(math.ceil(context / PAGE_SIZE) + 1, math.ceil(min(wanted, affordable) / PAGE_SIZE))


class ContinuousEngine(BaseEngine):
    """One ``ContinuousBatchingManager``, our slots in front of it, and a watchdog thread."""

    name = "transformers"

    def __init__(self, model_dir: str, *, max_batch: int = 32, threads: int | None = None,
                 max_batch_tokens: int = MAX_BATCH_TOKENS, cache_tokens: int | None = None,
                 attention: str = "auto"):
        super().__init__(model_dir, threads=threads)
        import torch
        from transformers import ContinuousBatchingConfig, GenerationConfig

        spans = attention == "spans" or (attention == "auto" and self.model.device.type == "cpu")
        if spans:  # per-conversation attention on the CPU (see cb_attention)
            from .cb_attention import use_spans_attention

            use_spans_attention(self.model)
        self.attention = self.model.config._attn_implementation

        self.max_batch = max(1, max_batch)
        self._stop_set = set(self.stop_ids)
        settings = GenerationConfig(
            do_sample=True, temperature=0.6, top_p=0.9, top_k=0,  # non-default, so per-request warpers exist
            eos_token_id=self.stop_ids, pad_token_id=self.pad_id, max_new_tokens=256,
        )
        config = ContinuousBatchingConfig(
            page_size=PAGE_SIZE, num_blocks=cache_pages(self.model.config, self.max_batch, cache_tokens),
            max_batch_tokens=max_batch_tokens, max_requests_per_batch=self.max_batch, per_request_processors=True,
            **({"max_blocks_per_request": 0} if spans else {}),  # no block table: spans need the index path
        )
        self.manager = self.model.init_continuous_batching(generation_config=settings,
                                                           continuous_batching_config=config)
        self.row_top_p = use_row_top_p(self.manager)
        self.fast_sampling = use_fast_sampling(self.manager)
        with torch.inference_mode():
            self.manager.start()
        self._lock = threading.RLock()
        self._waiting: collections.deque[Job] = collections.deque()
        self._live: dict[str, Job] = {}
        self._ids = itertools.count()
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cb-watch", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ requests
    def submit(self, job: Job) -> Future:
        job.on_cancel = self._cancel
        with self._lock:
            self._waiting.append(job)
            self._admit()
        return job.future

    def pending(self) -> int:
        return len(self._waiting)

    def running(self) -> int:
        return len(self._live)

    def engine_active(self) -> int:
        processor = self.manager.batch_processor
        if processor is None:
            return 0
        scheduler = processor.scheduler
        return len(scheduler.active_requests) + len(scheduler.waiting_requests) + self.manager.input_queue.qsize()

    def health(self) -> dict:
        return {**super().health(), "engine_active": self.engine_active(), "slots": self.max_batch}

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.manager.stop(block=True, timeout=5)

    # ------------------------------------------------------------------ slots (under the lock)
    def _admit(self) -> None:
        while self._waiting and len(self._live) < self.max_batch:
            job = self._waiting.popleft()
            if not job.future.set_running_or_notify_cancel():  # its waiter gave up while it queued
                job.emit(None)
                continue
            if job.cancelled:
                job.future.set_exception(Cancelled())
                job.emit(None)
                continue
            rid = f"azml-{next(self._ids)}"
            job.request_id = rid
            self._live[rid] = job
            size = len(self._live)
            self.largest_batch = max(self.largest_batch, size)
            for other in self._live.values():
                other.batch_size = max(other.batch_size, size)
            p = job.params
            router = self.manager.output_router
            with router._lock:  # what register_result_handler does, with no event loop in between
                router.result_handlers[rid] = (self._on_output, _RunNow)
            added = self.manager.add_request(
                job.prompt, request_id=rid, max_new_tokens=p.max_new_tokens, streaming=job.on_token is not None,
                eos_token_id=self.stop_ids, temperature=float(GREEDY_TEMPERATURE if p.greedy else p.temperature),
                top_p=float(1.0 if p.greedy else p.top_p),
            )
            if added is None:  # the manager refuses new work (its thread died): say so, never hang
                self._finish(job, error=RuntimeError("the generation engine stopped; restart the endpoint"))

    def _finish(self, job: Job, *, error: BaseException | None = None) -> None:
        if self._live.pop(job.request_id, None) is None and error is None:
            return
        router = self.manager.output_router
        with router._lock:
            router.result_handlers.pop(job.request_id, None)
        if not job.future.done():
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(job.result())
        if error is None and not job.cancelled:
            self.sequences += 1
        job.done = True
        job.emit(None)
        if not self._live and not self._waiting:
            self.batches += 1
        self._admit()

    def _cancel(self, job: Job) -> None:
        """The client left: its slot goes to the next waiting conversation now."""
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(Cancelled())
                job.emit(None)
                return
            rid = job.request_id
            if rid in self._live:
                self.manager.cancel_request(rid)
                self.cancelled_rows += 1
                self._finish(job, error=Cancelled())

    # ------------------------------------------------------------------ outputs
    def _on_output(self, output) -> None:
        """Runs in the manager's generation thread, between steps: new tokens to the job's stream,
        the end to its future (no thread of ours in between: one hand-off less per token)."""
        with self._lock:
            job = self._live.get(output.request_id)
            if job is None:  # cancelled: the manager may still send what it had
                return
            for token in output.generated_tokens[len(job.tokens) + job.stopped:]:
                if job.stopped:
                    break
                if token in self._stop_set:
                    job.stopped = True
                else:
                    job.tokens.append(token)
                    job.emit(token)
            if output.error is not None:
                log.error("generation failed for one request: %s", output.error)
                self._finish(job, error=RuntimeError(output.error))
            elif output.is_finished():
                self._finish(job)

    def _watch(self) -> None:
        """Fails every waiting job if the manager's thread dies, so no request waits for ever."""
        while not self._closed:
            fatal = self.manager.background_thread_status.fatal_error
            if fatal is not None:
                self._fail_all(fatal)
                return
            self._wake.wait(0.5)

    def _fail_all(self, error: BaseException) -> None:
        log.error("the generation engine stopped: %s", error)
        with self._lock:
            for job in list(self._live.values()) + list(self._waiting):
                self._waiting.clear()
                self._finish(job, error=RuntimeError(f"the generation engine stopped: {error}"))


class _RunNow:
    """Stands in for the event loop the manager's output router hands outputs to: runs them at once."""

    @staticmethod
    def call_soon_threadsafe(callback, *args) -> None:
        callback(*args)
