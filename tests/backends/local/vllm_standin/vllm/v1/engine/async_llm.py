"""Stand-in AsyncLLM (see ../../../../README.md)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

TOKENS = [11, 12, 13, 14, 15, 16, 17, 18]
STOP_AFTER: int | None = None
STEP_SECONDS = 0.002
created: list["AsyncLLM"] = []


@dataclass
class CompletionOutput:
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    outputs: list[CompletionOutput]
    finished: bool = False


@dataclass
class AsyncLLM:
    engine_args: dict
    requests: list[dict] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    running: set = field(default_factory=set)
    shut_down: bool = False

    @classmethod
    def from_engine_args(cls, engine_args):
        asyncio.get_running_loop()  # vLLM starts its output handler on the running loop when there is one
        llm = cls(engine_args.kwargs)
        created.append(llm)
        return llm

    async def generate(self, prompt, sampling_params, request_id, *, lora_request=None):
        self.requests.append({"prompt": prompt, "params": sampling_params, "request_id": request_id,
                              "lora": lora_request})
        self.running.add(request_id)
        params = sampling_params
        try:
            for i in range(params.max_tokens):
                await asyncio.sleep(STEP_SECONDS)
                stop = STOP_AFTER is not None and i == STOP_AFTER
                token = params.stop_token_ids[0] if stop else TOKENS[i % len(TOKENS)]
                last = stop or i == params.max_tokens - 1
                yield RequestOutput(request_id, [CompletionOutput([token], ("stop" if stop else "length") if last else None)],
                                    finished=last)
                if last:
                    self.finished.append(request_id)
                    return
        except (asyncio.CancelledError, GeneratorExit):
            await self.abort(request_id)
            raise
        finally:
            self.running.discard(request_id)

    async def abort(self, request_id):
        self.aborted.append(request_id)

    def shutdown(self, timeout=None):
        self.shut_down = True
