"""What the in-process engine tests share: prompts of different lengths and roles, and weights that
make greedy replies differ from prompt to prompt (the stock random init answers every prompt with the
same token, which would hide mistakes)."""

from __future__ import annotations

CONVERSATIONS = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "user", "content": "Summarize this dialog: a much longer prompt, with many more words in it to pad"}],
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}],
]


def randomize_weights(model, seed: int = 0) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
