"""Replies from each candidate: in-process for a model we can load, through its endpoint otherwise.

Both are batched (a left-padded ``generate`` batch in-process; concurrent requests to an endpoint,
which the local server batches itself) and both count their replies in one wait line (``waits``). Ctrl-C stops generating and
keeps the replies already made: the caller compares the rows every candidate answered.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Callable

from ..scoring import GenerationParams
from ..waits import hf_bars_off, wait
from ..scoring import Reply


@dataclass
class Generation:
    """What one candidate answered: replies for the first ``len(replies)`` prompts."""

    replies: list[Reply] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False


def load(folder: str, label: str = ""):
    """(tokenizer, model) from a Hugging Face folder, in float32 and eval mode, under one wait line and
    without transformers' own loading bars."""
    with wait(f"Loading model {label or folder}"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with hf_bars_off():
            return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def _generating(total: int, label: str, show: bool):
    """The wait that counts replies (silent with ``progress=False``)."""
    return wait(f"Generating replies: {label}" if label else "Generating replies", total=total, unit="rows",
                show_after=None if show else float("inf"))


def in_process(folder: str, prompts: list[list[dict]], params: GenerationParams, *, batch_size: int = 8,
               seed: int = 0, label: str = "", progress: bool = True) -> Generation:
    """Generate with ``transformers`` in this process, ``batch_size`` prompts per ``generate`` call."""
    tokenizer, model = load(folder, label)  # first, so the wait line covers importing torch
    import torch
    from transformers import GenerationConfig

    from ..backends.local.generator import stop_token_ids

    stops = stop_token_ids(tokenizer, model.generation_config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    settings = dict(max_new_tokens=params.max_new_tokens, pad_token_id=pad, eos_token_id=stops)
    if params.greedy:
        settings["do_sample"] = False
    else:
        settings.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
    config = GenerationConfig(**settings)
    torch.manual_seed(seed)
    out = Generation()
    with _generating(len(prompts), label, progress) as waiting:
        try:
            for start in range(0, len(prompts), batch_size):
                batch = [tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
                         for p in prompts[start:start + batch_size]]
                width = max(len(ids) for ids in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, prompt in enumerate(batch):
                    ids[row, width - len(prompt):] = torch.tensor(prompt)
                    mask[row, width - len(prompt):] = 1
                began = time.perf_counter()
                with torch.inference_mode():
                    generated = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
                spent = time.perf_counter() - began
                out.wall_s += spent
                for row in generated[:, width:].tolist():
                    out.replies.append(_reply(tokenizer, row, set(stops), spent))
                waiting.advance(len(batch))
        except KeyboardInterrupt:
            out.interrupted = True
            waiting.end_as("interrupted", f"{len(out.replies)} replies kept")
    return out


def _reply(tokenizer, row: list[int], stops: set[int], latency: float) -> Reply:
    """Cut a generated row at its first end-of-turn token (what follows is the batch's padding)."""
    for i, token in enumerate(row):
        if token in stops:
            text = tokenizer.decode(row[:i], skip_special_tokens=True)
            return Reply(text.strip(), "stop", prompt_tokens=None, completion_tokens=i + 1, latency_s=latency)
    return Reply(tokenizer.decode(row, skip_special_tokens=True).strip(), "length", prompt_tokens=None,
                 completion_tokens=len(row), latency_s=latency)


def through_endpoint(invoke: Callable[[dict], dict], prompts: list[list[dict]], params: GenerationParams, *,
                     batch_size: int = 8, label: str = "", progress: bool = True) -> Generation:
    """One ``/score`` request per prompt, ``batch_size`` in flight; ``invoke(request)`` returns the body."""
    from ..scoring import build_score_request, score_output

    def one(prompt):
        began = time.perf_counter()
        body = invoke(build_score_request(prompt, params))
        usage = body.get("usage") if isinstance(body, dict) else None
        finish = body.get("finish_reason") if isinstance(body, dict) else None
        return Reply(score_output(body).strip(), finish if isinstance(finish, str) else None, prompt_tokens=None,
                     completion_tokens=(usage or {}).get("completion_tokens"), latency_s=time.perf_counter() - began)

    out = Generation()
    began = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, batch_size), thread_name_prefix="azml-eval")
    futures = [pool.submit(one, p) for p in prompts]
    with _generating(len(prompts), label, progress) as waiting:
        try:
            for future in futures:  # in order, so the replies kept are the first rows
                wait_for([future])
                out.replies.append(future.result())
                waiting.advance(1)
        except KeyboardInterrupt:
            out.interrupted = True
            for future in futures:
                future.cancel()
            for future in futures[len(out.replies):]:  # keep the replies that arrived meanwhile, in order
                if not future.done() or future.cancelled() or future.exception() is not None:
                    break
                out.replies.append(future.result())
            waiting.end_as("interrupted", f"{len(out.replies)} replies kept")
        finally:
            pool.shutdown(wait=not out.interrupted, cancel_futures=True)
            out.wall_s = time.perf_counter() - began
    return out
