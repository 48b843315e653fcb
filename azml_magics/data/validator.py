"""Validate chat data files, streaming, with every rule of the Azure chat-completion pipeline.

Why streaming: a 400 MB split must be checked in one pass at disk speed and constant memory (apart
from the training prompt ids kept for the leakage check). ``Validator.run`` is a generator of the
rows it keeps, so ``prepare`` validates while it writes instead of reading the data twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Iterator

from ..defaults import SPLITS
from ..errors import DataError
from ..waits import wait
from .checks import check_row, prompt_key
from .readers import SUFFIXES, FileProblem, Item, iter_items, unit_of
from .report import FileResult, Problem, ValidationReport
from .rules import REASONS, render

KNOWN_SPLITS = (*SPLITS, "train", "test", "validation")
POLICIES = ("strict", "drop")


def resolve_files(files, train_split: str = "train_sft") -> tuple[dict[str, Path], bool]:
    """Map split -> path from a dict, a folder or one file; also say whether a train split is expected."""
    if isinstance(files, dict):
        return {str(k): Path(v) for k, v in files.items()}, True
    path = Path(files).expanduser()
    if path.is_dir():
        found: dict[str, Path] = {}
        for p in sorted(path.iterdir(), key=lambda p: (SUFFIXES.index(p.suffix.lower())
                                                        if p.suffix.lower() in SUFFIXES else 9, p.name)):
            if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."):
                found.setdefault(p.stem, p)
        if not found:
            raise DataError(f"no .jsonl, .json, .csv or .parquet files in folder {path}.",
                            hint="Point at the folder that prepare wrote, or at a data file.")
        return found, True
    split = path.stem if path.stem in KNOWN_SPLITS else train_split
    return {split: path}, False


class Validator:
    """Checks rows of one or more splits and records problems in a ValidationReport."""

    def __init__(self, *, tokenizer=None, max_seq_length: int | None = None,
                 supports_system_role: bool | None = True, policy: str = "strict",
                 min_train_rows: int = 10, train_split: str = "train_sft", test_split: str = "test_sft",
                 check_leaks: bool = True):
        if policy not in POLICIES:
            raise DataError(f"policy must be 'strict' or 'drop', not {policy!r}.")
        self.tokens = None
        if tokenizer is not None:
            from .tokens import TokenChecker, supports_system

            if supports_system_role is None:
                supports_system_role = supports_system(tokenizer)
            self.tokens = TokenChecker(tokenizer, max_seq_length, supports_system_role)
        self.supports_system_role = True if supports_system_role is None else bool(supports_system_role)
        self.min_train_rows = min_train_rows
        self.check_leaks = check_leaks
        self.report = ValidationReport(files={}, policy=policy, checked_tokens=self.tokens is not None,
                                       train_split=train_split, test_split=test_split)
        self._train_keys: dict[str, int] = {}
        self._train_name = ""

    # -- problems ------------------------------------------------------------------------------
    def _problem(self, result: FileResult, line: int, code: str, fields: dict) -> None:
        self.report.add(Problem(str(result.path), line, code, render(code, **fields), result.unit, fields))

    def run(self, split: str, path: Path, items: Iterable[Item] | None = None, *,
            keep_bad: bool = False) -> Iterator[Item]:
        """Check every row of one split; yield the rows that have no errors (all rows with keep_bad)."""
        path = Path(path)
        result = FileResult(split, path, unit_of(path) if items is None else "row")
        self.report.files[split] = result
        is_train = split == self.report.train_split
        is_test = split == self.report.test_split and self.check_leaks and bool(self._train_keys)
        collect = is_train and self.check_leaks
        if collect:
            self._train_name = path.name
        train_keys, tokens, sys_ok = self._train_keys, self.tokens, self.supports_system_role
        warning = {c for c, r in REASONS.items() if r.scope == "warning"}
        bad = result.bad_lines
        rows = 0
        try:
            for item in (iter_items(path) if items is None else items):
                rows += 1
                if item.problem is not None:
                    self._problem(result, item.line, *item.problem)
                    bad.add(item.line)
                    if keep_bad:
                        yield item
                    continue
                row = item.row
                problems = check_row(row, sys_ok)
                if problems is None and tokens is not None:
                    problems = tokens.check(row["messages"])
                if is_test and problems is None:
                    key = prompt_key(row)
                    if key is not None and key in train_keys:
                        problems = [("leak", {"pid": _short(key),
                                              "where": f"{self._train_name}:{train_keys[key]}"})]
                if problems is not None:
                    for code, fields in problems:
                        self._problem(result, item.line, code, fields)
                    if any(code not in warning for code, _ in problems):
                        bad.add(item.line)
                        if keep_bad:
                            yield item
                        continue
                if collect:
                    key = prompt_key(row)
                    if key is not None:
                        train_keys.setdefault(key, item.line)
                yield item
        except FileProblem as fp:
            result.fatal = True
            self._problem(result, fp.line, fp.code, fp.fields)
        except UnicodeDecodeError:  # text readers (CSV) that met a byte that is not UTF-8
            result.fatal = True
            self._problem(result, 0, "file_not_utf8", {})
        result.rows = rows
        result.dropped = len(bad)
        result.kept = rows - len(bad)
        if not result.fatal:
            self._check_size(result, is_train)

    def _check_size(self, result: FileResult, is_train: bool) -> None:
        if result.kept == 0:
            result.fatal = True
            self._problem(result, 0, "no_rows", {})
        elif is_train and result.kept < self.min_train_rows:
            result.fatal = True
            self._problem(result, 0, "too_few_train_rows", {"n": result.kept, "min": self.min_train_rows})

    def finish(self, expect_train: bool, started: float) -> ValidationReport:
        report = self.report
        if expect_train and report.train_split not in report.files:
            have = ", ".join(report.files) or "none"
            result = FileResult(report.train_split, Path(f"{report.train_split}.jsonl"), fatal=True)
            report.files[report.train_split] = result
            self._problem(result, 0, "no_train_split", {"split": report.train_split, "have": have})
        report.seconds = time.perf_counter() - started
        return report


def _short(key: str) -> str:
    text = key if len(key) <= 40 else key[:37] + "..."
    return repr(text)


def train_first(files: dict[str, Path], train_split: str) -> list[tuple[str, Path]]:
    """The training split first, so the test split can be checked against its prompts."""
    return sorted(files.items(), key=lambda kv: kv[0] != train_split)


def validate(files, *, tokenizer=None, max_seq_length: int | None = None,
             supports_system_role: bool | None = True, policy: str = "strict", min_train_rows: int = 10,
             train_split: str = "train_sft", test_split: str = "test_sft") -> ValidationReport:
    """Check every row of ``files`` (dict split->path, a folder, or one file) before any upload.

    ``supports_system_role=None`` asks the tokenizer's chat template. Returns the report; call
    ``raise_for_problems()`` to stop on problems, ``write_clean(folder)`` to write the usable rows.
    """
    started = time.perf_counter()
    paths, expect_train = resolve_files(files, train_split)
    v = Validator(tokenizer=tokenizer, max_seq_length=max_seq_length,
                  supports_system_role=supports_system_role, policy=policy, min_train_rows=min_train_rows,
                  train_split=train_split, test_split=test_split, check_leaks=test_split in paths)
    for split, path in train_first(paths, train_split):
        with wait(f"Validating {split} ({path.name})", unit="rows") as waiting:
            for _ in v.run(split, path, keep_bad=True):  # every row comes out, so every row is counted
                waiting.advance(1)
    report = v.finish(expect_train, started)
    # present the files in the order the caller gave them
    report.files = {s: report.files[s] for s in list(paths) + [s for s in report.files if s not in paths]}
    return report
