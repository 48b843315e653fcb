"""Per-conversation attention (cb_attention) gives what one masked SDPA over the whole step gives:
a step of mixed spans (a whole prompt, a decode token, a prompt's later chunk), with grouped heads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _masked_reference(query, key, value, spans_q, spans_k, groups):
    """What the manager computes on the CPU without spans: one SDPA, a block-causal mask."""
    nq, nk = query.shape[2], key.shape[2]
    mask = torch.zeros(nq, nk, dtype=torch.bool)
    for (q0, q1), (k0, k1) in zip(spans_q, spans_k):
        lq, lk = q1 - q0, k1 - k0
        mask[q0:q1, k0:k1] = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq)
    k = key.repeat_interleave(groups, dim=1)
    v = value.repeat_interleave(groups, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(query, k, v, attn_mask=mask)
    return out.transpose(1, 2)


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (8, 2)])
@pytest.mark.parametrize("q_lens, k_lens", [
    ([7, 1, 3, 1], [7, 12, 10, 1]),  # a whole prompt, a decode step, a later chunk, a first token
    ([1, 1, 1], [5, 17, 9]),  # decode steps only: the one padded SDPA
])
def test_spans_match_one_masked_attention_over_the_step(heads, kv_heads, q_lens, k_lens):
    from azml_magics.backends.local.cb_attention import spans_attention_forward

    torch.manual_seed(0)
    cq = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()])
    ck = torch.tensor([0, *torch.tensor(k_lens).cumsum(0).tolist()])
    query = torch.randn(1, heads, sum(q_lens), 16)
    key, value = torch.randn(1, kv_heads, sum(k_lens), 16), torch.randn(1, kv_heads, sum(k_lens), 16)
    ours, weights = spans_attention_forward(None, query, key, value, cu_seq_lens_q=cq, cu_seq_lens_k=ck)
    spans_q = list(zip(cq.tolist(), cq.tolist()[1:]))
    spans_k = list(zip(ck.tolist(), ck.tolist()[1:]))
    expected = _masked_reference(query, key, value, spans_q, spans_k, heads // kv_heads)
    assert weights is None and ours.shape == (1, sum(q_lens), heads, 16)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_the_engine_uses_spans_on_the_cpu_and_sdpa_when_asked(tiny_model_dir):
    from azml_magics.backends.local.cb_attention import NAME
    from azml_magics.backends.local.continuous import ContinuousEngine

    spans = ContinuousEngine(str(tiny_model_dir), threads=1, max_batch=2)
    plain = ContinuousEngine(str(tiny_model_dir), threads=1, max_batch=2, attention="sdpa")
    try:
        assert spans.attention == NAME and plain.attention == "sdpa"
        from azml_magics.backends.local.engine_base import Job
        from azml_magics.scoring import GenerationParams

        from .engine_cases import CONVERSATIONS, randomize_weights

        randomize_weights(spans.model)
        randomize_weights(plain.model)  # the same weights: replies that differ by prompt
        p = GenerationParams(max_new_tokens=24, do_sample=False)
        replies = []
        for engine in (spans, plain):  # all four at once: they share steps, prompts and decodes mixed
            futures = [engine.submit(Job(engine.encode(c, p), p)) for c in CONVERSATIONS]
            replies.append([f.result(60).token_ids for f in futures])
        assert len({tuple(r) for r in replies[1]}) == len(CONVERSATIONS)  # not vacuous
        assert replies[0] == replies[1]
    finally:
        spans.close()
        plain.close()
