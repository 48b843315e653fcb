"""What every generation engine of the local endpoint shares (runs inside the server process only).

The server talks to one engine through this small surface: ``encode`` a conversation, ``submit`` a
:class:`Job` (its future resolves to a :class:`Generated`; ``job.cancel()`` frees its slot), ``decode``
token ids, and the counters ``/health`` shows (``pending``, ``running``, ``batches``, ``sequences``,
``largest_batch``, ``threads``). Three engines implement it: ``generator.Engine`` (our padded
``model.generate`` batches), ``continuous.ContinuousEngine`` (transformers' continuous batching) and
``vllm_engine.VllmEngine`` (vLLM, on a CUDA GPU).
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from ...scoring import BadRequest, GenerationParams

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
    batch_size: int  # the most sequences generated together with this one


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
    batch_size: int = 0
    request_id: str | None = None  # the engine's name for it, once it has a slot
    on_cancel: Callable[["Job"], None] | None = None  # set by an engine that frees the slot at once

    def cancel(self) -> None:
        self.cancelled = True
        if self.on_cancel is not None and not self.future.done():
            self.on_cancel(self)

    def emit(self, token: int | None) -> None:
        if self.on_token is not None:
            try:
                self.on_token(token)
            except Exception:  # a consumer that went away must not stop the batch
                self.on_token = None

    def result(self) -> Generated:
        return Generated(
            token_ids=list(self.tokens),
            finish_reason="stop" if self.stopped else "length",
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.tokens) + (1 if self.stopped else 0),
            batch_size=max(1, self.batch_size),
        )


def stop_token_ids(tokenizer, generation_config) -> list[int]:
    """End-of-turn ids: the chat format's end marker first, then the tokenizer's and the model's
    (its ``generation_config``, which may be ``None``) eos."""
    ids: list[int] = []
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN:
        if token in vocab:
            ids.append(vocab[token])
    extra = [tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None)]
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


class BaseEngine:
    """Loads the tokenizer (and, for the engines that run the model in this process, the model) and
    does what every engine does alike; subclasses schedule."""

    name = "base"
    loads_model = True  # False for an engine that runs the model itself (vLLM)

    def __init__(self, model_dir: str, *, threads: int | None = None):
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.loads_model:
            import torch
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
            self.threads = threads or default_threads(self.model)
            torch.set_num_threads(self.threads)
            config, generation = self.model.config, self.model.generation_config
        else:
            self.model = None
            self.threads = threads or 1
            config = AutoConfig.from_pretrained(model_dir)
            try:
                generation = GenerationConfig.from_pretrained(model_dir)
            except OSError:  # a folder without generation_config.json
                generation = None
        self.stop_ids = stop_token_ids(self.tokenizer, generation)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]
        self.context = getattr(config.get_text_config(), "max_position_embeddings", None)
        self.batches = 0
        self.sequences = 0
        self.cancelled_rows = 0  # rows freed mid-generation because their client left (Stop)
        self.largest_batch = 0

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

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def submit(self, job: Job) -> Future:  # pragma: no cover - every engine overrides it
        raise NotImplementedError

    def pending(self) -> int:
        """Conversations waiting for a slot."""
        raise NotImplementedError

    def running(self) -> int:
        """Conversations generating now."""
        raise NotImplementedError

    def held(self) -> int:
        """Conversations this engine holds (waiting or generating): what the endpoint's limit counts."""
        return self.pending() + self.running()

    def health(self) -> dict:
        """The engine's part of ``/health``."""
        return {
            "engine": self.name,
            "pending": self.pending(),
            "running": self.running(),
            "batches": self.batches,
            "sequences": self.sequences,
            "cancelled": self.cancelled_rows,
            "largest_batch": self.largest_batch,
            "threads": self.threads,
        }

    def close(self) -> None:
        """Stop background work (the server process ends anyway; tests that build many engines call it)."""


class TextDelta:
    """Turns a stream of token ids into text pieces, holding back a half-decoded character.

    With a fast tokenizer each token is decoded once, by the tokenizers library's incremental
    ``DecodeStream`` (what ``transformers serve`` streams with), so a token costs the same however long
    the reply is; a slow tokenizer re-decodes the reply so far. ``flush`` hands over whatever the whole
    decode holds beyond what was sent (a character left half-decoded at the end), so the pieces always
    add up to ``engine.decode`` of all the tokens.
    """

    def __init__(self, engine: BaseEngine):
        self.engine = engine
        self.ids: list[int] = []
        self.sent = 0
        self._backend = getattr(engine.tokenizer, "_tokenizer", None)
        self._stream = None
        if self._backend is not None:
            from tokenizers.decoders import DecodeStream

            self._stream = DecodeStream(skip_special_tokens=True)

    def push(self, *tokens: int) -> str:
        self.ids.extend(tokens)
        if self._stream is not None:
            pieces = [self._stream.step(self._backend, t) for t in tokens]
            piece = "".join(x for x in pieces if x)
            self.sent += len(piece)
            return piece
        text = self.engine.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        piece, self.sent = text[self.sent:], len(text)
        return piece

    def flush(self) -> str:
        text = self.engine.decode(self.ids)
        piece, self.sent = text[self.sent:], len(text)
        return piece


class LoopWaker:
    """Wakes the event loop once for every stream that got tokens in one engine step.

    ``call_soon_threadsafe`` writes to the loop's wake-up pipe; with 32 streams that is 32 writes and
    32 wake-ups a step. Here the first stream of a step schedules one callback and the others join it.
    Called from the engine's thread (and from the loop's, when a row is cancelled).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._lock = threading.Lock()
        self._pipes: list[TokenPipe] = []
        self._scheduled = False

    def wake(self, pipe: "TokenPipe") -> None:
        with self._lock:
            self._pipes.append(pipe)
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:  # the loop's thread
        with self._lock:
            pipes, self._pipes, self._scheduled = self._pipes, [], False
        for pipe in pipes:
            pipe.wake()


class TokenPipe:
    """A job's tokens from the engine's thread to its stream on the event loop: one wake-up of the
    loop per burst, not per token, and the stream takes every token that has arrived at once, so a
    stream that falls behind under load sends one chunk for several tokens instead of lagging more."""

    def __init__(self, waker: LoopWaker):
        self.waker = waker
        self.items: collections.deque = collections.deque()
        self.ready = asyncio.Event()
        self.scheduled = False

    def __call__(self, token: int | None) -> None:  # the engine's thread
        self.items.append(token)
        if not self.scheduled:
            self.scheduled = True
            self.waker.wake(self)

    def wake(self) -> None:  # the loop's thread
        self.scheduled = False
        self.ready.set()

    def take_nowait(self) -> list:
        """Every token that has arrived (maybe none); ``None`` last means the end."""
        out = []
        while self.items:
            out.append(self.items.popleft())
        return out

    async def take(self) -> list:
        """Every token that has arrived (waiting for one if none has); ``None`` last means the end."""
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.take_nowait()
