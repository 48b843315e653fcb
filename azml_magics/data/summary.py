"""Explore chat data: rows, turns, characters and tokens per role, examples, a length histogram.

Why: before paying for a fine-tune a user wants to see what the data looks like - how long the
conversations are against ``max_seq_length``, how many turns, what a row reads like. Rows are
streamed; only per-row lengths are kept. pandas and matplotlib are imported on first use.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

from ..display import Displayable, escape, figure_png, png_img
from ..waits import wait
from .readers import FileProblem, iter_items
from .tokens import token_limit
from .validator import resolve_files

ROLES = ("system", "user", "assistant")
PERCENTILES = (50, 90, 99)


@dataclass
class _Lengths:
    """Per-row numbers for one split, kept as compact arrays."""

    rows: int = 0
    skipped: int = 0  # rows that are not usable conversations (see validate for why)
    messages: array = field(default_factory=lambda: array("I"))
    turns: array = field(default_factory=lambda: array("I"))  # user messages per conversation
    chars: dict = field(default_factory=lambda: {r: array("I") for r in ROLES})
    tokens: dict = field(default_factory=lambda: {r: array("I") for r in ROLES})
    row_chars: array = field(default_factory=lambda: array("I"))
    row_tokens: array = field(default_factory=lambda: array("I"))


@dataclass
class DataSummary(Displayable):
    table: object  # pandas.DataFrame: one row per (split, measure), columns count/mean/p50/p90/p99/max
    examples: list[list[dict]]  # a few conversations from the first split
    histogram_png: bytes  # conversation length histogram, one series per split
    splits: dict[str, int]  # split -> usable rows
    unit: str = "characters"  # what the histogram counts: characters, or tokens with a tokenizer
    limit: int | None = None  # the token limit rows are cut at (max_seq_length, or the model's maximum)
    cut: dict[str, int] = field(default_factory=dict)  # split -> rows longer than ``limit`` (cut in training)

    def cut_lines(self) -> list[str]:
        """One line per split: how many rows training would cut at the token limit."""
        if self.limit is None:
            return []
        return [f"{split}: {n} of {self.splits[split]} rows are longer than {self.limit} tokens and would be cut"
                for split, n in self.cut.items()]

    def rendered_examples(self) -> list[str]:
        return [render_conversation(c) for c in self.examples]

    def save_histogram(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.histogram_png)
        return path

    def __str__(self) -> str:
        parts = [f"Data summary ({', '.join(f'{s}: {n} rows' for s, n in self.splits.items())})",
                 *self.cut_lines(), self.table.to_string()]
        for i, text in enumerate(self.rendered_examples(), 1):
            parts.append(f"--- example {i} ---\n{text}")
        return "\n".join(parts)

    def _repr_png_(self) -> bytes:
        return self.histogram_png

    def html(self) -> str:
        convs = "".join(
            "<div style='border:1px solid #ccc;margin:4px;padding:4px'>" + "".join(
                f"<div><b>{escape(str(m.get('role')))}</b>: {escape(str(m.get('content')))}</div>" for m in c) + "</div>"
            for c in self.examples)
        cut = "".join(f"<div>{escape(line)}</div>" for line in self.cut_lines())
        return (f"<div><b>Data summary</b>{cut}{self.table.to_html(float_format=lambda x: f'{x:.1f}')}"
                f"{png_img(self.histogram_png, 'length histogram')}{convs}</div>")


def render_conversation(messages: list[dict], width: int = 400) -> str:
    """A conversation as 'role: text' lines, long texts shortened."""
    out = []
    for m in messages:
        text = str(m.get("content"))
        text = text if len(text) <= width else text[: width - 3] + "..."
        out.append(f"{m.get('role')}: {text}")
    return "\n".join(out)


def summarize(files, *, tokenizer=None, examples: int = 2, max_seq_length: int | None = None) -> DataSummary:
    """Summarise ``files`` (dict split->path, a folder, or one file); token counts need ``tokenizer``.

    With a tokenizer, rows longer than ``max_seq_length`` (or the tokenizer's maximum) are counted:
    training cuts them there."""
    paths, _ = resolve_files(files)
    stats: dict[str, _Lengths] = {}
    shown: list[list[dict]] = []
    if tokenizer is not None and isinstance(getattr(tokenizer, "deprecation_warnings", None), dict):
        tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    # examples come from the training split when there is one
    for split, path in sorted(paths.items(), key=lambda kv: (kv[0] not in ("train_sft", "train"),
                                                                 not kv[0].startswith("train"))):
        with wait(f"Measuring {split} ({path.name})" + (" with the tokenizer" if tokenizer is not None else "")):
            stats[split] = _measure(path, tokenizer, shown if len(shown) < examples else None, examples)
    stats = {s: stats[s] for s in paths}
    unit = "tokens" if tokenizer is not None else "characters"
    limit = token_limit(tokenizer, max_seq_length) if tokenizer is not None else None
    cut = {s: sum(1 for n in st.row_tokens if n > limit) for s, st in stats.items()} if limit else {}
    with wait("Drawing the length histograms"):  # the first one imports matplotlib: seconds
        histogram = _histogram(stats, unit, limit)
    return DataSummary(_table(stats, tokenizer is not None), shown[:examples], histogram,
                       {s: st.rows - st.skipped for s, st in stats.items()}, unit, limit, cut)


def _usable(row) -> list[dict] | None:
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return None
    return messages


def _measure(path: Path, tokenizer, shown: list | None, examples: int) -> _Lengths:
    st = _Lengths()
    batch: list[list[dict]] = []
    try:
        for item in iter_items(path):
            st.rows += 1
            messages = None if item.problem else _usable(item.row)
            if messages is None:
                st.skipped += 1
                continue
            if shown is not None and len(shown) < examples:
                shown.append(messages)
            st.messages.append(len(messages))
            st.turns.append(sum(1 for m in messages if m.get("role") == "user"))
            total = 0
            for role in ROLES:
                n = sum(len(m["content"]) for m in messages if m.get("role") == role)
                if n:
                    st.chars[role].append(n)
                total += n
            st.row_chars.append(total)
            if tokenizer is not None:
                batch.append(messages)
                if len(batch) >= 512:
                    _count_tokens(tokenizer, batch, st)
                    batch = []
    except FileProblem:
        pass  # an unreadable file: validate says why; the summary shows what could be read
    if batch:
        _count_tokens(tokenizer, batch, st)
    return st


def _count_tokens(tokenizer, batch: list[list[dict]], st: _Lengths) -> None:
    """Tokens per role (content only) and per rendered conversation (with the chat template)."""
    texts = [m["content"] for c in batch for m in c]
    counts = iter(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    for conv in batch:
        per_role = dict.fromkeys(ROLES, 0)
        for m in conv:
            n = next(counts)
            if m.get("role") in per_role:
                per_role[m["role"]] += n
        for role, n in per_role.items():
            if n:
                st.tokens[role].append(n)
    try:
        rendered = tokenizer.apply_chat_template(batch, tokenize=False)
        for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"]:
            st.row_tokens.append(len(ids))
    except Exception:  # a template that rejects some row: validate reports it; count content tokens
        for conv in batch:
            st.row_tokens.append(sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"])
                                     for m in conv))


def _table(stats: dict[str, _Lengths], with_tokens: bool):
    import numpy as np
    import pandas as pd

    records = []
    for split, st in stats.items():
        measures = {"messages per conversation": st.messages, "user turns per conversation": st.turns,
                    "characters per conversation": st.row_chars}
        measures.update({f"{role} characters": st.chars[role] for role in ROLES})
        if with_tokens:
            measures["tokens per conversation"] = st.row_tokens
            measures.update({f"{role} tokens": st.tokens[role] for role in ROLES})
        for name, values in measures.items():
            if not len(values):
                continue
            a = np.frombuffer(values, dtype=np.uint32) if values.itemsize == 4 else np.asarray(values)
            rec = {"split": split, "measure": name, "rows": len(a), "mean": float(a.mean())}
            rec.update({f"p{p}": float(np.percentile(a, p)) for p in PERCENTILES})
            rec["max"] = int(a.max())
            records.append(rec)
    columns = ["split", "measure", "rows", "mean", *[f"p{p}" for p in PERCENTILES], "max"]
    return pd.DataFrame.from_records(records, columns=columns).set_index(["split", "measure"])


def _histogram(stats: dict[str, _Lengths], unit: str, limit: int | None = None) -> bytes:
    """One small histogram per split (side by side, not overlaid), with the token limit marked."""
    from matplotlib.figure import Figure  # a Figure without pyplot: no global state, no GUI

    shown = {split: (st.row_tokens if unit == "tokens" else st.row_chars) for split, st in stats.items()}
    shown = {split: values for split, values in shown.items() if len(values)} or {"(no rows)": []}
    fig = Figure(figsize=(min(3.0 * len(shown), 12), 2.6), dpi=100)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (split, values) in zip(axes, shown.items()):
        if len(values):
            ax.hist(list(values), bins=30, color="#0969da")
        if limit:
            ax.axvline(limit, color="#cf222e", linestyle="--", linewidth=1)
            cut = sum(1 for n in values if n > limit)
            ax.set_title(f"{split} ({len(values)}; {cut} cut)", fontsize=9)
        else:
            ax.set_title(f"{split} ({len(values)})", fontsize=9)
        ax.set_xlabel(f"{unit} per conversation", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("conversations", fontsize=8)
    if limit:
        fig.suptitle(f"dashed: the {limit}-token limit (longer rows are cut)", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)
