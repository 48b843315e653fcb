"""The scores: ROUGE-L (``rouge-score``) and BLEU (``sacrebleu``) against the reference replies, reply
length, the share of replies that ended at the end-of-turn token, speed, and the loss on held-out
conversations for models we can load.

Only the libraries compute the text metrics; nothing here re-implements them. They are the ``eval``
extra: a missing one is refused in one line before any generation starts.
"""

from __future__ import annotations

import math

from ..errors import AzmlError
from ..scoring import Reply

LIBRARIES = {"rouge_score": "rouge-score", "sacrebleu": "sacrebleu"}
# metric -> whether a higher value is better (None: neither, it is shown for information)
HIGHER_IS_BETTER = {
    "rougeL": True, "bleu": True, "stop_rate": True, "reply_tokens": None, "reply_words": None,
    "latency_s": False, "tokens_per_s": True, "loss": False, "perplexity": False,
}


def require_libraries() -> None:
    """Refuse in one line, before anything runs, when the ``eval`` extra is not installed."""
    import importlib.util

    missing = [pip for module, pip in LIBRARIES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise AzmlError(f"evaluation needs {', '.join(missing)}: pip install 'azml_magics[eval]'.")


def rouge_l(predictions: list[str], references: list[str]) -> list[float]:
    """ROUGE-L F-measure of each reply against its reference (Google's rouge-score, with stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu's standard 13a tokenisation), 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def sentence_bleu(predictions: list[str], references: list[str]) -> list[float]:
    """BLEU of each reply alone (smoothed), for the per-row table."""
    import sacrebleu

    return [float(sacrebleu.sentence_bleu(p, [r]).score) for p, r in zip(predictions, references)]


def summary(replies: list[Reply], references: list[str], wall_s: float | None = None) -> dict[str, float]:
    """The per-candidate numbers over the rows it answered (``wall_s``: its whole generation time)."""
    texts = [r.text for r in replies]
    out = {
        "rougeL": _mean(rouge_l(texts, references)),
        "bleu": bleu(texts, references) if texts else math.nan,
        "reply_words": _mean([len(t.split()) for t in texts]),
    }
    tokens = [r.completion_tokens for r in replies if r.completion_tokens is not None]
    if tokens:
        out["reply_tokens"] = _mean(tokens)
    told = [r.finish_reason for r in replies if r.finish_reason]
    if told:
        out["stop_rate"] = sum(f == "stop" for f in told) / len(told)
    out["latency_s"] = _mean([r.latency_s for r in replies])
    if tokens and wall_s:  # rows of a batch share its time: tokens over the candidate's wall time
        out["tokens_per_s"] = sum(tokens) / wall_s
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def conversation_loss(folder: str, conversations: list[list[dict]]) -> dict[str, float]:
    """Mean loss per reply token (assistant tokens only, as the trainer counts it) and its perplexity.

    The chat template's generation marks give the assistant mask; a template without them scores
    every token. Rows longer than the model's context are cut to it.
    """
    import torch

    from .generation import load

    tokenizer, model = load(folder)
    limit = getattr(model.config, "max_position_embeddings", None) or 4096
    total, count = 0.0, 0
    with torch.inference_mode():
        for messages in conversations:
            enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
            ids = list(enc["input_ids"])[:limit]
            mask = list(enc.get("assistant_masks") or [])[:limit]
            if not any(mask):
                mask = [1] * len(ids)
            input_ids = torch.tensor([ids])
            labels = torch.tensor([[i if m else -100 for i, m in zip(ids, mask)]])
            logits = model(input_ids=input_ids).logits[:, :-1]
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    mean = total / max(count, 1)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0))}
