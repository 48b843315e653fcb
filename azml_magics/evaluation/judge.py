"""A pairwise judge: any OpenAI-compatible chat endpoint says which of two replies is better.

Each row is judged twice with the replies swapped, so a judge that favours the first (or second)
position cannot make a winner: a candidate wins a row only when the judge picks it in both orders.
The win rate counts wins over decided rows (ties and inconsistent verdicts are reported apart),
with a Wilson 95% interval from ``scipy``. The prompt is a plain template the user can read and
replace (``{question}``, ``{answer_a}``, ``{answer_b}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_PROMPT = """You are comparing two answers to the same question.

Question:
{question}

Answer A:
{answer_a}

Answer B:
{answer_b}

Which answer is more helpful, correct and clear? Reply with exactly one word: A, B or tie."""

FIELDS = ("{question}", "{answer_a}", "{answer_b}")
_VERDICT = re.compile(r"\b(A|B|tie)\b", re.IGNORECASE)


class JudgeUnreachable(Exception):
    """The judge endpoint did not answer; the message is one line."""


@dataclass
class Judge:
    """Where the judge is: an OpenAI-style base URL (``.../v1``), its key and model name."""

    base_url: str
    key: str | None = None
    model: str = "default"
    prompt: str = DEFAULT_PROMPT
    timeout: float = 60.0

    def __repr__(self) -> str:  # never show the key
        return f"Judge(base_url={self.base_url!r}, model={self.model!r})"


@dataclass
class JudgeResult:
    """Pairwise verdicts of ``second`` against ``first`` over the rows."""

    first: str
    second: str
    prompt: str
    wins: int = 0  # rows the second candidate won in both orders
    losses: int = 0
    ties: int = 0  # a tie, or verdicts that changed with the order
    unreadable: int = 0  # an answer that was not A, B or tie
    verdicts: list[str] = field(default_factory=list)  # per row: second, first, tie or unreadable

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.decided:
            return None
        from scipy.stats import binomtest

        ci = binomtest(self.wins, self.decided).proportion_ci(confidence_level=0.95, method="wilson")
        return float(ci.low), float(ci.high)

    def line(self) -> str:
        head = f"judge: {self.second} vs {self.first}: "
        counts = f"{self.wins} won, {self.losses} lost, {self.ties} tied or order-dependent, {self.unreadable} unreadable"
        if self.win_rate is None:
            return head + f"no decided row ({counts})"
        low, high = self.interval
        return head + f"win rate {self.win_rate:.2f} (95% interval {low:.2f}-{high:.2f}; {counts})"


def check_prompt(prompt: str) -> str:
    """A judge prompt must place the question and both answers; one line otherwise."""
    from ..errors import SpecError

    missing = [f for f in FIELDS if f not in prompt]
    if missing:
        raise SpecError(f"the judge prompt lacks {', '.join(missing)}; it must hold {', '.join(FIELDS)}.")
    return prompt


def verdict(text: str) -> str | None:
    """'A', 'B', 'tie' from the judge's reply (the first such word), or None."""
    found = _VERDICT.search(text or "")
    if not found:
        return None
    word = found.group(1)
    return "tie" if word.lower() == "tie" else word.upper()


def ask(judge: Judge, client, question: str, answer_a: str, answer_b: str) -> str | None:
    """One judgement through ``/chat/completions``; JudgeUnreachable when the endpoint cannot be used."""
    import httpx

    content = judge.prompt.replace("{question}", question).replace("{answer_a}", answer_a).replace("{answer_b}", answer_b)
    body = {"model": judge.model, "messages": [{"role": "user", "content": content}], "max_tokens": 16,
            "temperature": 0.0, "stream": False}
    headers = {"Authorization": f"Bearer {judge.key}"} if judge.key else {}
    url = judge.base_url.rstrip("/") + "/chat/completions"
    try:
        response = client.post(url, json=body, headers=headers, timeout=judge.timeout)
    except httpx.HTTPError as exc:
        raise JudgeUnreachable(f"the judge at {judge.base_url} is unreachable ({type(exc).__name__}: {exc})") from None
    if response.status_code != 200:
        raise JudgeUnreachable(f"the judge at {judge.base_url} answered HTTP {response.status_code}")
    try:
        return verdict(response.json()["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise JudgeUnreachable(f"the judge at {judge.base_url} did not answer in the chat-completions shape") from None


def compare(judge: Judge, questions: list[str], first: list[str], second: list[str], *, names=("first", "second"),
            progress=None) -> JudgeResult:
    """Judge each row in both orders; ``progress(n)`` is called after each row."""
    import httpx

    check_prompt(judge.prompt)
    result = JudgeResult(first=names[0], second=names[1], prompt=judge.prompt)
    with httpx.Client() as client:
        for q, a, b in zip(questions, first, second):
            one = ask(judge, client, q, a, b)  # first candidate in position A
            two = ask(judge, client, q, b, a)  # swapped: second candidate in position A
            if one is None or two is None:
                result.unreadable += 1
                result.verdicts.append("unreadable")
            elif one == "B" and two == "A":
                result.wins += 1
                result.verdicts.append(names[1])
            elif one == "A" and two == "B":
                result.losses += 1
                result.verdicts.append(names[0])
            else:
                result.ties += 1
                result.verdicts.append("tie")
            if progress:
                progress(1)
    return result
