"""Prepare a chat dataset the way the notebook does: a fraction of each split, written as JSON lines.

Why not the notebook's code: ``load_dataset(..., split="train_sft[:5%]")`` converts the whole split
to Arrow before slicing, then writes it out without a look at the rows. Here a local file is
streamed (only the rows kept are read), a hub dataset is streamed when its split sizes are known,
and every row goes through the validator on its way to disk. ``policy`` decides what a bad row does:
``None`` keeps it and reports it, ``"drop"`` leaves it out, ``"strict"`` writes nothing and raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from ..defaults import DATA_FOLDER, DATASET_SOURCE, PREPARED_RECORD, SPLITS
from ..display import Displayable, Rich, Table, escape
from ..errors import DataError
from ..files import read_json, write_json
from ..files import special_kind
from ..waits import counted, hf_bars_off, wait
from .readers import SUFFIXES, Item, iter_items
from .report import ValidationReport
from .validator import Validator, train_first

DEFAULT_SOURCE = DATASET_SOURCE
_CHUNK = 1 << 24


@dataclass
class PreparedDataset(Displayable):
    folder: Path
    files: dict[str, Path]
    rows: dict[str, int]
    source: str
    seconds: float
    report: ValidationReport | None = field(default=None, repr=False)

    def __str__(self) -> str:
        lines = [f"Prepared {sum(self.rows.values())} rows from {self.source} into {self.folder} "
                 f"in {self.seconds:.2f}s"]
        lines += [f"  {split}: {self.rows[split]} rows -> {path}" for split, path in self.files.items()]
        if self.report is not None and self.report.counts:
            lines += ["  " + line for line in str(self.report).splitlines()]
        return "\n".join(lines)

    def html(self) -> str:
        took = f" in {self.seconds:.2f}s"
        title = Rich(f"<b>Prepared from {escape(self.source)}</b>{took}", f"Prepared from {self.source}{took}")
        table = Table(["split", "rows", "file"], [[s, self.rows[s], str(p)] for s, p in self.files.items()],
                      title=title)
        extra = self.report.html() if self.report is not None and self.report.counts else ""
        return f"<div>{table.html()}{extra}</div>"


def prepare(source: str | Path = DEFAULT_SOURCE, *, fraction: float | None = 0.05, rows: int | None = None,
            splits: Iterable[str] = SPLITS, out: str | Path = DATA_FOLDER,
            policy: str | None = None, tokenizer=None, max_seq_length: int | None = None,
            supports_system_role: bool | None = True, train_split: str = "train_sft",
            test_split: str = "test_sft") -> PreparedDataset:
    """Write the first ``rows`` (or ``fraction``) of each split of ``source`` as ``out/<split>.jsonl``.

    ``source``: a hub dataset id (read through ``datasets``), a local dataset folder laid out like
    the hub's, or local files: one file (JSON lines, JSON, CSV, Parquet) or a folder of
    ``<split>.<ext>`` files.
    """
    started = time.perf_counter()
    splits = tuple(splits)
    _check_args(fraction, rows, splits, policy)
    readers = _open_source(source, splits, fraction, rows)
    folder = Path(out).expanduser()
    validator = Validator(tokenizer=tokenizer, max_seq_length=max_seq_length,
                          supports_system_role=supports_system_role, policy=policy or "drop",
                          train_split=train_split, test_split=test_split,
                          check_leaks=test_split in readers)
    folder.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}
    counts: dict[str, int] = {}
    try:
        for split, (label, items) in train_first(readers, train_split):
            target = folder / f"{split}.jsonl"
            if target.exists() and target.resolve() == Path(label).resolve():
                raise DataError(f"prepare would overwrite its source {target}.", hint="Pass a different out=.")
            temps[split] = target.with_name(f".{target.name}.tmp")
            with wait(f"Preparing {split} from {label}", unit="rows") as waiting, hf_bars_off():
                kept = validator.run(split, Path(label), counted(items, waiting), keep_bad=policy is None)
                counts[split] = _write(temps[split], kept)
        report = validator.finish(False, started)
        if policy == "strict":
            report.raise_for_problems()
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    files = {}
    for split in readers:
        files[split] = temps[split].replace(folder / f"{split}.jsonl")
    return PreparedDataset(folder, files, {s: counts[s] for s in readers}, str(source),
                           time.perf_counter() - started, report)


def _check_args(fraction, rows, splits, policy) -> None:
    if policy not in (None, "strict", "drop"):
        raise DataError(f"policy must be 'strict', 'drop' or None, not {policy!r}.")
    if not splits:
        raise DataError("no splits asked for.", hint="Pass splits=('train_sft', 'test_sft').")
    if rows is not None:
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            raise DataError(f"rows must be a positive whole number, not {rows!r}.")
    elif fraction is None or not (0 < float(fraction) <= 1):
        raise DataError(f"fraction must be above 0 and at most 1 (0.05 is 5%), not {fraction!r}.",
                        hint="Or pass rows=N for the first N rows of each split.")


def _write(path: Path, items: Iterable[Item]) -> int:
    n = 0
    with open(path, "wb") as fh:
        for item in items:
            if item.raw is not None:
                fh.write(item.raw if item.raw.endswith(b"\n") else item.raw + b"\n")
            else:
                fh.write(orjson.dumps(item.row, default=str) + b"\n")
            n += 1
    return n


# -- sources ----------------------------------------------------------------------------------------

def _open_source(source, splits, fraction, rows) -> dict[str, tuple[str, Iterable[Item]]]:
    """split -> (label for messages, rows to check) for the requested slice of each split."""
    path = Path(str(source)).expanduser()
    if path.is_file():
        # one file is one split; it keeps an ultrachat split name, otherwise it becomes the first split
        # asked for (train_sft), so the folder it lands in is one %%azml_finetune takes as is
        split = path.stem if path.stem in SPLITS else splits[0]
        return {split: (str(path), _local_slice(path, fraction, rows))}
    if path.is_dir():
        local = _local_split_files(path)
        if local:
            missing = [s for s in splits if s not in local]
            if missing:
                raise DataError(f"{path} has no file for split(s) {', '.join(missing)} "
                                f"(found: {', '.join(sorted(local))}).",
                                hint="Name files <split>.jsonl (or .json/.csv/.parquet) or pass splits=.")
            return {s: (str(local[s]), _local_slice(local[s], fraction, rows)) for s in splits}
    elif special_kind(path):
        raise DataError(f"data source {source} is {special_kind(path)}, not a data file or folder.",
                        hint="Pass a hub dataset id (owner/name), or an existing file or folder.")
    elif _looks_like_path(str(source)):
        raise DataError(f"data source {source} does not exist.",
                        hint="Pass a hub dataset id (owner/name), or an existing file or folder.")
    return {s: (f"{source}:{s}", _hub_slice(str(source), s, fraction, rows)) for s in splits}


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or Path(text).suffix.lower() in SUFFIXES or text.count("/") != 1


def _local_split_files(folder: Path) -> dict[str, Path]:
    found = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."):
            found.setdefault(p.stem, p)
    return found


def _wanted(total: int, fraction: float | None, rows: int | None) -> int:
    """Rows to keep: as datasets slices ``split[:5%]`` (rounded to the closest row)."""
    if rows is not None:
        return min(rows, total)
    pct = round(float(fraction) * 100, 6)
    return int(round(pct * total / 100.0))


def _local_slice(path: Path, fraction, rows) -> Iterator[Item]:
    n = rows if rows is not None else _wanted(count_rows(path), fraction, None)
    return islice(iter_items(path), n)


def count_rows(path: Path) -> int:
    """Rows in a data file, without parsing JSON lines (newline count) or Parquet (metadata)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        n, last = 0, b"\n"
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return 0  # the reader reports the broken file
    try:
        return sum(1 for _ in iter_items(path))
    except Exception:
        return 0


def _hub_slice(source: str, split: str, fraction, rows) -> Iterator[Item]:
    """Rows of a ``datasets`` source: streamed when the slice size is known, else the notebook's way."""
    import datasets

    try:
        with wait(f"Opening {source}:{split}"), hf_bars_off():
            if rows is None:
                total = _split_size(source, split)
                if total is not None:
                    rows, fraction = _wanted(total, fraction, None), None
            if rows is not None:
                stream = datasets.load_dataset(source, split=split, streaming=True).take(rows)
            else:
                pct = round(float(fraction) * 100, 6)
                if pct == int(pct):
                    stream = datasets.load_dataset(source, split=f"{split}[:{int(pct)}%]")
                else:
                    full = datasets.load_dataset(source, split=split)
                    stream = full.select(range(_wanted(len(full), fraction, None)))
    except (ValueError, KeyError) as err:
        raise DataError(f"cannot read split {split!r} of {source}: {str(err).splitlines()[0]}",
                        hint="Check the dataset id and split names (ultrachat_200k: train_sft, test_sft, "
                             "train_gen, test_gen).") from None
    except (ConnectionError, OSError) as err:
        raise DataError(f"cannot reach dataset {source}: {str(err).splitlines()[0]}",
                        hint="Check the name and the network, or prepare from local files.") from None
    return (Item(n, None, row, None) for n, row in enumerate(stream, 1))


def _split_size(source: str, split: str) -> int | None:
    """The split's row count from the dataset card's metadata, when it has one."""
    import datasets

    try:
        info = datasets.load_dataset_builder(source).info
    except Exception:
        return None
    found = (info.splits or {}).get(split) if info.splits else None
    return found.num_examples if found is not None and found.num_examples else None


def record_prepared(home: Path, prepared: PreparedDataset) -> None:
    """Remember the folder this home's last prepare wrote: the forms start from it (all of it)."""
    write_json(Path(home) / PREPARED_RECORD,
               {"folder": str(prepared.folder.resolve()), "rows": prepared.rows, "source": prepared.source})


def last_prepared(home: Path) -> tuple[Path, dict[str, int]] | None:
    """(folder, rows per split) of the last prepare in ``home``, else the default data folder in the
    working directory when it holds a train split; None when there is neither."""
    try:
        record = read_json(Path(home) / PREPARED_RECORD)
    except ValueError:
        record = {}
    folder = Path(record["folder"]) if record.get("folder") else Path(DATA_FOLDER).resolve()
    if not (folder / f"{SPLITS[0]}.jsonl").is_file():
        return None
    return folder, dict(record.get("rows") or {}) if record.get("folder") else {}
