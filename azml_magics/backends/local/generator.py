"""Batched text generation for the local endpoint (runs inside the server process only).

Requests that arrive within a few milliseconds of each other, or while a batch is running, are
generated together as one left-padded batch by ``model.generate``; each row keeps its own sampling
parameters (a logits processor), its own token limit and its own end-of-turn stop (a stopping
criterion that also hands every new token to the row's stream). One worker thread owns the model,
so the event loop never blocks and ``/health`` stays responsive while generating.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from ...scoring import BadRequest, GenerationParams

log = logging.getLogger("azml_magics.endpoint")
SMALL_MODEL_PARAMETERS = 20_000_000
END_OF_TURN = ("<|end|>", "<|endoftext|>", "<|eot_id|>", "<|im_end|>")


class Cancelled(Exception):
    """The request went away (client disconnected or timed out) before its row finished."""


@dataclass
class Generated:
    token_ids: list[int]
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int  # generated tokens, the end-of-turn token included
    batch_size: int


@dataclass
class Job:
    """One conversation to continue; ``on_token`` gets each new token id, then ``None`` at the end."""

    prompt: list[int]
    params: GenerationParams
    on_token: Callable[[int | None], None] | None = None
    future: Future = field(default_factory=Future)
    cancelled: bool = False
    tokens: list[int] = field(default_factory=list)
    stopped: bool = False
    done: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def emit(self, token: int | None) -> None:
        if self.on_token is not None:
            try:
                self.on_token(token)
            except Exception:  # a consumer that went away must not stop the batch
                self.on_token = None


def stop_token_ids(tokenizer, model) -> list[int]:
    """End-of-turn ids: the chat format's end marker first, then the tokenizer's and model's eos."""
    ids: list[int] = []
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN:
        if token in vocab:
            ids.append(vocab[token])
    extra = [tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)]
    for value in extra:
        for i in value if isinstance(value, list) else [value]:
            if i is not None and i not in ids:
                ids.append(int(i))
    if not ids:
        raise ValueError("the tokenizer has no end-of-turn or eos token; generation could never stop")
    return ids


def default_threads(model) -> int:
    """All cores for a real model; one for a tiny one, whose small matrices gain nothing from a
    second thread and lose much when the cores are busy with other work (thread barriers spin)."""
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS
    return 1 if small else (os.cpu_count() or 1)


class Engine:
    """Owns the model and the worker thread; ``submit`` is safe from any thread."""

    def __init__(self, model_dir: str, *, max_batch: int = 8, window_ms: float = 10.0, threads: int | None = None):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.threads = threads or default_threads(self.model)
        torch.set_num_threads(self.threads)
        self.stop_ids = stop_token_ids(self.tokenizer, self.model)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        self.max_batch = max(1, max_batch)
        self.window = window_ms / 1000.0
        self.batches = 0
        self.sequences = 0
        self.largest_batch = 0
        self._last_size = 0
        self._queue: queue.Queue[Job] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="generate", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ requests
    def encode(self, messages: list[dict], params: GenerationParams) -> list[int]:
        """Prompt ids for a conversation, or :class:`BadRequest` if the template or context refuses it."""
        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja's raise_exception, e.g. roles out of order
            raise BadRequest(f"the model's chat template refused these messages: {exc}") from None
        try:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        except Exception as exc:
            raise BadRequest(f"the tokenizer cannot read these messages: {exc}") from None
        if self.context and len(ids) + params.max_new_tokens > self.context:
            raise BadRequest(
                f"the prompt is {len(ids)} tokens and max_new_tokens is {params.max_new_tokens}: more than "
                f"this model's context of {self.context} tokens; shorten the conversation or ask for fewer tokens"
            )
        return ids

    def submit(self, job: Job) -> Future:
        self._queue.put(job)
        return job.future

    def pending(self) -> int:
        return self._queue.qsize()

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

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
        try:
            self._generate(live)
            for job in live:
                if job.cancelled:
                    job.future.set_exception(Cancelled())
                else:
                    job.future.set_result(self._result(job, len(live)))
        except BaseException as exc:  # report to every waiting request; the worker lives on
            log.exception("generation failed for a batch of %d", len(live))
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
        finally:
            for job in live:
                job.emit(None)

    @staticmethod
    def _result(job: Job, batch_size: int) -> Generated:
        return Generated(
            token_ids=list(job.tokens),
            finish_reason="stop" if job.stopped else "length",
            prompt_tokens=len(job.prompt),
            completion_tokens=len(job.tokens) + (1 if job.stopped else 0),
            batch_size=batch_size,
        )

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


class TextDelta:
    """Turns a stream of token ids into text pieces, holding back a half-decoded character."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.ids: list[int] = []
        self.sent = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.engine.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        piece, self.sent = text[self.sent:], len(text)
        return piece

    def flush(self) -> str:
        text = self.engine.decode(self.ids)
        piece, self.sent = text[self.sent:], len(text)
        return piece
