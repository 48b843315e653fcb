"""Per-conversation attention for transformers' continuous batching on the CPU.

On the CPU the continuous-batching manager runs SDPA once over the whole step: every query token of
every conversation against every cached token of every conversation, with a mask that hides the
others' tokens. With 8 conversations of 300 tokens that is 8 x 2,400 scores a layer instead of
8 x 300, and building that mask each step costs as much again. The manager's flash path instead
hands the attention function each conversation's span (``cu_seq_lens_q`` / ``cu_seq_lens_k``, no
mask), but flash kernels exist only on GPUs. This module registers an attention function under a
name the manager takes for a flash one, which runs SDPA on each conversation's own span, so a step
costs what its conversations' own tokens cost.

Sources: transformers 5.24 ``generation/continuous_batching`` (``switch_to_cb_friendly_attn`` takes
any name with "flash" in it; ``attn_mask_is_needed``: no mask for such a name; ``PagedAttentionCache.update``
returns every conversation's keys and values one after the other in ``cu_seq_lens_k`` order when no
block table is used, which ``max_blocks_per_request=0`` ensures), ``integrations/sdpa_attention.py``
(the output layout ``[batch, tokens, heads, head_dim]``).
"""

from __future__ import annotations

NAME = "flash_spans_sdpa_cpu"  # "flash" in the name: what makes the manager pass spans instead of a mask


def spans_attention_forward(module, query, key, value, attention_mask=None, dropout: float = 0.0,
                            scaling: float | None = None, cu_seq_lens_q=None, cu_seq_lens_k=None, **kwargs):
    """SDPA on each conversation's span. ``query`` is ``[1, heads, q_tokens, dim]``; ``key`` and ``value``
    ``[1, kv_heads, k_tokens, dim]``. A span's queries are its last tokens (causal, aligned at the end)."""
    import torch
    import torch.nn.functional as F

    if cu_seq_lens_q is None or cu_seq_lens_k is None:  # not called by the manager: one causal sequence
        cu_seq_lens_q = torch.tensor([0, query.shape[2]])
        cu_seq_lens_k = torch.tensor([0, key.shape[2]])
    groups = query.shape[1] // key.shape[1]
    cq, ck = cu_seq_lens_q.tolist(), cu_seq_lens_k.tolist()
    out = query.new_empty(query.shape[2], query.shape[1], query.shape[3])  # [q_tokens, heads, dim]
    for i in range(len(cq) - 1):
        q0, q1, k0, k1 = cq[i], cq[i + 1], ck[i], ck[i + 1]
        if q1 == q0:
            continue
        q, k, v = query[:, :, q0:q1], key[:, :, k0:k1], value[:, :, k0:k1]
        nq, nk = q1 - q0, k1 - k0
        if nq == 1:  # a decode step: the one new token sees everything before it
            mask, causal = None, False
        elif nq == nk:
            mask, causal = None, True
        else:  # a prompt's later chunk: causal, aligned at the end of the keys
            mask = torch.ones(nq, nk, dtype=torch.bool, device=q.device).tril(nk - nq)
            causal = False
        span = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scaling,
                                              enable_gqa=groups > 1)
        out[q0:q1] = span[0].transpose(0, 1)
    if cq[-1] < query.shape[2]:  # padding tokens past the last span
        out[cq[-1]:] = 0
    return out.unsqueeze(0), None


def use_spans_attention(model) -> str:
    """Register the function (idempotent) and make ``model`` use it; returns its name.

    ``model.set_attn_implementation`` would try to import flash kernels for a name with "flash" in it,
    so the name is set on the config, which every attention layer reads at each forward. Masks for
    the name are flash's (none: the spans say who sees whom)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(NAME, spans_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, flash_attention_mask)
    model.config._attn_implementation = NAME
    return NAME
