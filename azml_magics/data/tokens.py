"""Checks that need the model's tokenizer: the chat template, token lengths, assistant tokens left.

Why: the Azure pipeline applies the chat template to every row and fails the whole job on the first
row it rejects; it truncates rows to ``max_seq_length`` and drops the ones with no assistant tokens
left. Doing the same here, before upload, turns a failed GPU job into a line number.

Only called with a tokenizer in hand (``transformers`` is imported by whoever loaded it).
"""

from __future__ import annotations

from .checks import fold_system

_HUGE = 10**8  # transformers' "no limit" model_max_length is about 1e30


def token_limit(tokenizer, max_seq_length: int | None) -> int | None:
    """min(max_seq_length or the model's maximum, the tokenizer's maximum), as the pipeline does."""
    limits = [n for n in (max_seq_length, getattr(tokenizer, "model_max_length", None))
              if isinstance(n, int) and 0 < n < _HUGE]
    return min(limits) if limits else None


def supports_system(tokenizer) -> bool:
    """Whether the chat template keeps a system message (rather than raising or dropping it)."""
    marker = "azml-system-probe"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": marker}, {"role": "user", "content": "hi"}], tokenize=False)
    except Exception:
        return False
    return marker in text


class TokenChecker:
    """Apply the chat template to a row and check its length against the limit."""

    def __init__(self, tokenizer, max_seq_length: int | None = None, supports_system_role: bool = True):
        self.tokenizer = tokenizer
        self.limit = token_limit(tokenizer, max_seq_length)
        self.supports_system_role = supports_system_role
        template = getattr(tokenizer, "chat_template", None) or ""
        self.masked = "generation" in template if isinstance(template, str) else False
        warned = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):  # we report long rows ourselves, per row
            warned["sequence-length-is-longer-than-the-specified-maximum"] = True

    def check(self, messages: list[dict]) -> list[tuple[str, dict]] | None:
        if not self.supports_system_role:
            messages = fold_system(messages)
        try:
            total, prompt = self._lengths(messages)
        except Exception as err:  # jinja's TemplateError, or whatever raise_exception raised
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return [("template_error", {"detail": detail[:200]})]
        limit = self.limit
        if not limit or total <= limit:
            return None
        if prompt >= limit:
            return [("assistant_truncated", {"max": limit, "n": prompt}),
                    ("too_long", {"n": total, "max": limit})]
        return [("too_long", {"n": total, "max": limit})]

    def _lengths(self, messages: list[dict]) -> tuple[int, int]:
        """(tokens in the row, tokens before the first assistant token)."""
        tok = self.tokenizer
        if self.masked:
            enc = tok.apply_chat_template(messages, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True)
            mask = enc["assistant_masks"]
            if 1 in mask:
                return len(enc["input_ids"]), mask.index(1)
            # a template with generation markers that marked nothing: fall through to the prefix way
            total = len(enc["input_ids"])
        else:
            total = len(_ids(tok.apply_chat_template(messages, tokenize=True)))
        first = next(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        prompt = _ids(tok.apply_chat_template(messages[:first], tokenize=True, add_generation_prompt=True))
        return total, len(prompt)


def _ids(encoded) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        return encoded["input_ids"]
    return encoded
