"""What validation found: problems with file and line, counts by reason, kept and dropped rows.

Why a report object rather than an exception: a notebook user wants the whole picture at once (how
many rows of each kind are broken, with a few examples to open), then to choose between fixing the
file and dropping the rows. ``raise_for_problems`` turns it into the one-line error the magics show.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..backends.base import DataFiles
from ..display import Displayable, Rich, Table, escape
from ..errors import DataError
from .checks import fold_system as fold
from .readers import iter_items
from .rules import REASONS

MAX_PROBLEMS = 10_000  # problems kept in full; counts stay exact beyond this
EXAMPLES = 3


@dataclass
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem is the file as a whole
    reason: str
    message: str
    unit: str = "line"  # "line" (JSON lines, CSV) or "row" (JSON, Parquet)
    fields: dict = field(default_factory=dict, repr=False)  # what the message was rendered from

    @property
    def fix(self) -> str:
        return REASONS[self.reason].fix.format(**self.fields)

    @property
    def severity(self) -> str:
        return "warning" if REASONS[self.reason].scope == "warning" else "error"

    @property
    def location(self) -> str:
        name = Path(self.file).name
        if not self.line:
            return name
        return f"{name}:{self.line}" if self.unit == "line" else f"{name} row {self.line}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class FileResult:
    split: str
    path: Path
    unit: str = "line"
    rows: int = 0  # rows read (blank lines are not rows)
    kept: int = 0
    dropped: int = 0
    fatal: bool = False  # the file as a whole is unusable
    bad_lines: set[int] = field(default_factory=set, repr=False)  # lines/rows with an error


@dataclass
class ValidationReport(Displayable):
    files: dict[str, FileResult]
    policy: str = "strict"
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # reason -> problems found
    examples: dict[str, list[Problem]] = field(default_factory=dict)  # reason -> first few
    seconds: float = 0.0
    checked_tokens: bool = False
    train_split: str = "train_sft"
    test_split: str = "test_sft"

    # -- recording -----------------------------------------------------------------------------
    def add(self, problem: Problem) -> None:
        self.counts[problem.reason] = self.counts.get(problem.reason, 0) + 1
        examples = self.examples.setdefault(problem.reason, [])
        if len(examples) < EXAMPLES:
            examples.append(problem)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    # -- reading -------------------------------------------------------------------------------
    @property
    def errors(self) -> int:
        return sum(n for code, n in self.counts.items() if REASONS[code].scope != "warning")

    @property
    def warnings(self) -> int:
        return sum(n for code, n in self.counts.items() if REASONS[code].scope == "warning")

    @property
    def fatal(self) -> bool:
        return any(f.fatal for f in self.files.values())

    @property
    def ok(self) -> bool:
        """Usable as it stands (strict), or usable once the bad rows are dropped (drop)."""
        if self.fatal:
            return False
        return self.policy == "drop" or self.errors == 0

    @property
    def dropped(self) -> int:
        return sum(len(f.bad_lines) for f in self.files.values())

    def by_reason(self) -> list[tuple[str, int, list[Problem]]]:
        """(reason, count, examples), commonest first; file-level problems lead."""
        order = sorted(self.counts, key=lambda c: (REASONS[c].scope != "file", -self.counts[c], c))
        return [(c, self.counts[c], self.examples.get(c, [])) for c in order]

    def raise_for_problems(self) -> None:
        """Raise one DataError line when the data cannot be used as it stands (under this policy)."""
        if self.ok:
            return
        code, count, examples = next(r for r in self.by_reason() if REASONS[r[0]].scope != "warning")
        first = examples[0]
        if REASONS[code].scope == "file":
            raise DataError(f"{first}.", hint=_capital(first.fix) + ".")
        total, rows = self.errors, self.dropped
        kept = sum(f.kept for f in self.files.values())
        head = (f"{total} problem{'s' if total != 1 else ''} in the data; commonest: {count} "
                f"{REASONS[code].title}, first at {first}.")
        hint = (f"Fix: {first.fix}; or use policy drop (--policy drop, data: {{policy: drop}} in a spec, "
                f"policy='drop' in Python) to drop {rows} row{'s' if rows != 1 else ''} and keep {kept}.")
        raise DataError(head, hint=hint)

    # -- writing -------------------------------------------------------------------------------
    def write_clean(self, out_dir: str | Path, *, fold_system: bool = False):
        """Write the usable rows as ``<split>.jsonl`` in ``out_dir``; return backends.base.DataFiles.

        Under ``strict`` a report with errors raises instead. ``fold_system`` rewrites system
        messages into the first user message, for models without a system role.
        """
        self.raise_for_problems()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        written: dict[str, Path] = {}
        rows: dict[str, int] = {}
        for split, result in self.files.items():
            target = out / f"{split}.jsonl"
            if target.resolve() == result.path.resolve():
                raise DataError(f"write_clean would overwrite its input {target}.",
                                hint="Pass a different out_dir.")
            tmp = target.with_name(f".{target.name}.tmp")
            n = 0
            with open(tmp, "wb") as fh:
                for item in iter_items(result.path):
                    if item.problem or item.line in result.bad_lines:
                        continue
                    if fold_system or item.raw is None:
                        row = item.row
                        if fold_system:
                            row = dict(row, messages=fold(row["messages"]))
                        data = orjson.dumps(row) + b"\n"
                    else:
                        data = item.raw if item.raw.endswith(b"\n") else item.raw + b"\n"
                    fh.write(data)
                    digest.update(data)
                    n += 1
            tmp.replace(target)
            written[split], rows[split] = target, n
        train = written.get(self.train_split) or next(iter(written.values()))
        test = written.get(self.test_split)
        return DataFiles(train=str(train), test=str(test) if test else None,
                         fingerprint=digest.hexdigest(), rows=rows)

    # -- display -------------------------------------------------------------------------------
    def summary_lines(self) -> list[str]:
        lines = []
        for split, f in self.files.items():
            state = "unusable" if f.fatal else f"{f.kept} kept, {len(f.bad_lines)} with errors"
            lines.append(f"{split}: {f.path.name}: {f.rows} rows, {state}")
        return lines

    def __str__(self) -> str:
        verdict = "OK" if self.ok and not self.errors else ("usable after dropping rows" if self.ok else "NOT usable")
        out = [f"Data validation ({self.policy}): {verdict}; {self.errors} errors, {self.warnings} warnings"
               f" in {self.seconds:.2f}s" + ("" if self.checked_tokens else " (no tokenizer: token checks skipped)")]
        out += ["  " + line for line in self.summary_lines()]
        for code, count, examples in self.by_reason():
            reason = REASONS[code]
            out.append(f"  {count} x {code} [{reason.scope}]: {reason.title}. Fix: {examples[0].fix}")
            out += [f"      {p}" for p in examples]
        return "\n".join(out)

    def html(self) -> str:
        colour = "#2e7d32" if self.ok and not self.errors else ("#ef6c00" if self.ok else "#c62828")
        head = str(self).splitlines()[0]
        files = Table(["split", "file", "rows", "kept", "with errors"],
                      [[s, f.path.name, f.rows, f.kept, len(f.bad_lines)] for s, f in self.files.items()],
                      title=Rich(f"<b style='color:{colour}'>{escape(head)}</b>", head))
        reasons = [[Rich(f"<code>{escape(c)}</code>", c), n, REASONS[c].title,
                    Rich("<br>".join(escape(p) for p in ex), "; ".join(str(p) for p in ex)), ex[0].fix]
                   for c, n, ex in self.by_reason()]
        table = Table(["reason", "count", "what", "examples", "fix"], reasons).html() if reasons else ""
        return f"<div>{files.html()}{table}</div>"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
