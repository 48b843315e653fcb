"""Stand-in for vllm (see ../README.md): the names azml_magics' vllm engine imports."""

from __future__ import annotations


class AsyncEngineArgs:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        for key, value in kwargs.items():
            setattr(self, key, value)


def TokensPrompt(prompt_token_ids):  # a TypedDict in vLLM
    return {"prompt_token_ids": list(prompt_token_ids)}
