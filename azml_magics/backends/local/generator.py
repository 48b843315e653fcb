"""Batched text generation for the local endpoint (runs inside the server process only): ``--engine batcher``.

Requests that arrive within a few milliseconds of each other, or while a batch is running, are
generated together as one left-padded batch by ``model.generate``; each row keeps its own sampling
parameters (a logits processor), its own token limit and its own end-of-turn stop (a stopping
criterion that also hands every new token to the row's stream). One worker thread owns the model,
so the event loop never blocks and ``/health`` stays responsive while generating. A request that
arrives during a batch waits for the whole batch: ``continuous.ContinuousEngine`` does not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from .engine_base import (  # noqa: F401 - re-exported: the server and tests import them from here
    END_OF_TURN,
    SMALL_MODEL_PARAMETERS,
    BaseEngine,
    Cancelled,
    Generated,
    Job,
    TextDelta,
    default_threads,
    stop_token_ids,
)

log = logging.getLogger("azml_magics.endpoint")


class Engine(BaseEngine):
    """Owns the model and the worker thread; ``submit`` is safe from any thread."""

    name = "batcher"

    def __init__(self, model_dir: str, *, max_batch: int = 8, window_ms: float = 10.0, threads: int | None = None):
        super().__init__(model_dir, threads=threads)
        self.max_batch = max(1, max_batch)
        self.window = window_ms / 1000.0
        self._last_size = 0
        self._live: list[Job] = []  # the batch being generated (read by running())
        self._queue: queue.Queue[Job] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="generate", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ requests
    def submit(self, job: Job) -> Future:
        self._queue.put(job)
        return job.future

    def pending(self) -> int:
        return self._queue.qsize()

    def running(self) -> int:
        """Rows still generating (a cancelled row stops at its next token, so Stop shows up here)."""
        return sum(not job.done for job in self._live)

    # ------------------------------------------------------------------ worker
    def _loop(self) -> None:
        while True:
            self._last_size = len(batch := self._collect())
            self._run(batch)

    def _collect(self) -> list[Job]:
        """The next batch: whatever is queued, and, when the last batch was shared, up to a window's
        wait for as many requests as it had (its clients send again as their answers arrive).
        A lone client never waits."""
        batch = [self._queue.get()]
        expected = min(self._last_size, self.max_batch)
        deadline = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            wait = deadline - time.monotonic() if len(batch) < expected else 0.0
            try:
                batch.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self, batch: list[Job]) -> None:
        live = []
        for job in batch:
            # once running, a waiter that gives up (a timeout) can no longer cancel the future,
            # so setting its result below is always allowed
            if not job.future.set_running_or_notify_cancel():
                job.emit(None)
            elif job.cancelled:
                job.future.set_exception(Cancelled())
                job.emit(None)
            else:
                live.append(job)
        if not live:
            return
        self._live = live
        try:
            self._generate(live)
            for job in live:
                if job.cancelled:
                    self.cancelled_rows += 1
                    job.future.set_exception(Cancelled())
                else:
                    job.future.set_result(self._result(job, len(live)))
        except BaseException as exc:  # report to every waiting request; the worker lives on
            log.exception("generation failed for a batch of %d", len(live))
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
        finally:
            self._live = []
            for job in live:
                job.emit(None)

    @staticmethod
    def _result(job: Job, batch_size: int) -> Generated:
        job.batch_size = batch_size
        return job.result()

    def _generate(self, jobs: list[Job]) -> None:
        width = max(len(job.prompt) for job in jobs)
        ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):
            ids[row, width - len(job.prompt):] = torch.tensor(job.prompt, dtype=torch.long)
            mask[row, width - len(job.prompt):] = 1
        settings = dict(
            max_new_tokens=max(job.params.max_new_tokens for job in jobs),
            pad_token_id=self.pad_id,
            eos_token_id=self.stop_ids,
        )
        processors = LogitsProcessorList()
        if all(job.params.greedy for job in jobs):
            settings["do_sample"] = False
        else:
            settings.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
            processors.append(_RowSampling(jobs))
        rows = _RowStops(jobs, set(self.stop_ids))
        with torch.inference_mode():
            self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=GenerationConfig(**settings),
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([rows]),
            )
        self.batches += 1
        self.sequences += len(jobs)
        self.largest_batch = max(self.largest_batch, len(jobs))


class _RowStops(StoppingCriteria):
    """Collects each row's new token, streams it, and stops the row at end of turn, its own
    token limit or cancellation (``generate`` pads finished rows until the batch ends)."""

    def __init__(self, jobs: list[Job], stop_ids: set[int]):
        self.jobs = jobs
        self.stop_ids = stop_ids

    def __call__(self, input_ids, scores, **kwargs):
        newest = input_ids[:, -1].tolist()
        for job, token in zip(self.jobs, newest):
            if job.done:
                continue
            if token in self.stop_ids:
                job.stopped = True
            else:
                job.tokens.append(token)
                job.emit(token)
            job.done = job.stopped or job.cancelled or len(job.tokens) >= job.params.max_new_tokens
        return torch.tensor([job.done for job in self.jobs], dtype=torch.bool, device=input_ids.device)


class _RowSampling(LogitsProcessor):
    """Per-row temperature and top-p; greedy rows keep only their arg-max, so one sampling pass
    serves a batch that mixes greedy and sampled requests."""

    def __init__(self, jobs: list[Job]):
        self.greedy = torch.tensor([job.params.greedy for job in jobs])
        self.temperature = torch.tensor([max(job.params.temperature, 1e-5) for job in jobs])[:, None]
        self.top_p = torch.tensor([job.params.top_p for job in jobs])[:, None]

    def __call__(self, input_ids, scores):
        scaled = scores / self.temperature
        ordered, order = scaled.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        drop_sorted = (probs.cumsum(dim=-1) - probs) > self.top_p  # the most likely token always stays
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        sampled = scaled.masked_fill(drop, float("-inf"))
        if not bool(self.greedy.any()):
            return sampled
        best = torch.full_like(scores, float("-inf")).scatter(-1, scores.argmax(dim=-1, keepdim=True), 0.0)
        return torch.where(self.greedy[:, None], best, sampled)
