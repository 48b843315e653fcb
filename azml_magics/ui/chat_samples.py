"""What "Try a sample" sends, and what each reply's footer says.

A sample is a test row's first user message and the assistant reply that follows it in the data:
the reference answer, shown beside the model's reply so the two can be compared. The footer reads the
finished :class:`~azml_magics.scoring.Reply` the stream ends with; what the route did not report is
said so ("tokens not reported"), never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..defaults import DATA_FOLDER
from ..files import iter_jsonl

SAMPLE_FILE = "test_gen.jsonl"


@dataclass
class Sample:
    prompt: str
    reference: str | None  # the data's own assistant reply to the prompt (None when the row has none)


def samples(path: str | Path | None = None) -> list[Sample]:
    """Samples from the test data: the prepared ``test_gen`` split, else the bundled sample."""
    for candidate in _sample_files(path):
        if candidate.is_file():
            found = [s for s in map(_sample, iter_jsonl(candidate)) if s is not None]
            if found:
                return found
    return []


def sample_prompts(path: str | Path | None = None) -> list[str]:
    """First user messages of the test data (see :func:`samples`)."""
    return [s.prompt for s in samples(path)]


def _sample(row) -> Sample | None:
    messages = row.get("messages") if isinstance(row, dict) else None
    messages = [m for m in messages or [] if isinstance(m, dict)]
    first = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first is None or not isinstance(messages[first].get("content"), str) or not messages[first]["content"].strip():
        return None
    after = messages[first + 1] if first + 1 < len(messages) else {}
    reference = after.get("content") if after.get("role") == "assistant" else None
    return Sample(messages[first]["content"].strip(), reference if isinstance(reference, str) and reference.strip() else None)


def _sample_files(path) -> list[Path]:
    files = []
    if path:
        p = Path(path).expanduser()
        files.append(p / SAMPLE_FILE if p.is_dir() else p)
    files.append(Path(DATA_FOLDER) / SAMPLE_FILE)
    try:
        from ..data import sample_dir

        files.append(Path(sample_dir()) / SAMPLE_FILE)
    except ImportError:
        pass
    files.append(Path(__file__).resolve().parent.parent / "sample_data" / SAMPLE_FILE)
    return files


def reply_footer(final, stopped: bool, started: float, first: float | None, ended: float) -> str:
    """Tokens, tokens/s (completion tokens over the whole latency), finish reason, latency and the
    time to the first text. ``final`` is the stream's finished Reply, or None (stopped, or a route
    that gives nothing but text)."""
    latency = ended - started
    tokens = final.completion_tokens if final is not None else None
    if tokens is None:
        parts = ["tokens not reported"]
    else:
        parts = [f"{tokens} tokens", f"{tokens / latency:.1f} tokens/s" if latency > 0 else "- tokens/s"]
    if stopped:
        parts.append("stopped by you")
    elif final is None or final.finish_reason is None:
        parts.append("finish reason not reported")
    elif final.finish_reason == "length":
        parts.append("finish: length (cut at max_new_tokens)")
    else:
        parts.append(f"finish: {final.finish_reason}")
    parts.append(f"{latency:.2f} s")
    if first is not None:
        parts.append(f"first text after {first - started:.2f} s")
    return " · ".join(parts)
