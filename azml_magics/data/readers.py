"""Read rows from JSON lines, JSON, CSV or Parquet files one at a time.

Why a reader of our own: the checks must see every line with its line number, a broken line must
become a problem (not an exception that hides the rest), and a 400 MB file must not be loaded whole.
JSON lines (the format the pipeline takes) are streamed with orjson; CSV and Parquet stream too;
a ``.json`` document is parsed whole, because JSON offers no boundary to stream on.

Every reader yields ``Item(line, raw, row, problem)``: ``line`` is the 1-based line (JSON lines, CSV)
or row number (JSON, Parquet), ``raw`` the line's bytes where the file has lines, ``row`` the parsed
object, ``problem`` a ``(code, fields)`` pair when the line could not be read as a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, NamedTuple

import orjson

from ..files import special_kind

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_BOM = b"\xef\xbb\xbf"


class Item(NamedTuple):
    line: int
    raw: bytes | None
    row: object
    problem: tuple[str, dict] | None


class FileProblem(Exception):
    """The file as a whole cannot be read; carries a reason code and its fields."""

    def __init__(self, code: str, line: int = 0, **fields: object):
        super().__init__(code)
        self.code, self.line, self.fields = code, line, fields


def unit_of(path: Path) -> str:
    """Whether problems in this file are located by line or by row number."""
    return "row" if path.suffix.lower() in (".json", ".parquet") else "line"


def iter_items(path: Path) -> Iterator[Item]:
    """Yield the file's rows; raise FileProblem where the whole file is unusable."""
    kind = special_kind(path)
    if kind:  # a FIFO would block and /dev/zero never end; a folder is there, not "not found"
        raise FileProblem("not_a_file", kind=kind)
    if not path.is_file():
        raise FileProblem("file_missing")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(path)
    if suffix == ".json":
        return _json(path)
    if suffix == ".csv":
        return _csv(path)
    if suffix == ".parquet":
        return _parquet(path)
    raise FileProblem("unsupported_format", ext=suffix or path.name)


def _json_error(raw: bytes, err: Exception) -> tuple[str, dict]:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_encoding", {}
    try:  # parse again without the line end, so the column points into the line
        orjson.loads(raw.rstrip(b"\r\n"))
    except orjson.JSONDecodeError as inner:
        err = inner
    return "bad_json", {"detail": str(err).split(": line ")[0] + _column(err)}


def _column(err: Exception) -> str:
    col = getattr(err, "colno", None)
    return f" (column {col})" if col else ""


def _jsonl(path: Path) -> Iterator[Item]:
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    with open(path, "rb") as fh:
        first = True
        for n, raw in enumerate(fh, 1):
            if first:
                if raw.startswith(_BOM):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                first = False
                if raw.lstrip().startswith(b"["):
                    _check_not_array(raw)
            try:
                row = loads(raw)
            except decode_error as err:
                if not raw.strip():  # blank lines are skipped, as pandas and datasets do
                    continue
                yield Item(n, raw, None, _json_error(raw, err))
                continue
            if type(row) is not dict:
                yield Item(n, raw, row, _not_object(row))
                continue
            yield Item(n, raw, row, None)


def _check_not_array(raw: bytes) -> None:
    """A first line that opens a JSON array of rows means the file is a JSON document, not JSON lines."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FileProblem("json_array", 1) from None
    if isinstance(value, list) and value and all(isinstance(v, dict) and "messages" in v for v in value):
        raise FileProblem("json_array", 1)


def _not_object(row: object) -> tuple[str, dict]:
    from .rules import describe_type

    if isinstance(row, list) and row and all(isinstance(m, dict) and "role" in m for m in row):
        return "bare_messages", {}
    return "not_object", {"type": describe_type(row)}


def _json(path: Path) -> Iterator[Item]:
    try:
        doc = orjson.loads(path.read_bytes().removeprefix(_BOM))
    except orjson.JSONDecodeError as err:
        raise FileProblem("bad_json_file", detail=str(err).split(": line ")[0] + _column(err)) from None
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if "messages" in doc or len(lists) != 1:
            doc = [doc]  # a single conversation
        else:
            doc = lists[0]  # {"data": [...]} as written by some exporters
    if not isinstance(doc, list):
        raise FileProblem("bad_json_file", detail="expected a list of conversations")
    for n, row in enumerate(doc, 1):
        yield Item(n, None, row, None if type(row) is dict else _not_object(row))


def _csv(path: Path) -> Iterator[Item]:
    import csv
    import sys

    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "messages" not in columns:
            raise FileProblem("csv_no_messages", columns=", ".join(columns) or "none")
        start = reader.line_num + 1
        for row in _decoded(reader, lambda: start):
            line, start = start, reader.line_num + 1
            cell = row.get("messages")
            try:
                messages = orjson.loads(cell) if cell else cell
            except orjson.JSONDecodeError as err:
                yield Item(line, None, row, ("csv_bad_messages", {"detail": str(err).split(": line ")[0]}))
                continue
            row = dict(row)
            row["messages"] = messages
            for key in ("tools",):
                if row.get(key):
                    try:
                        row[key] = orjson.loads(row[key])
                    except orjson.JSONDecodeError:
                        pass
                elif key in row:
                    del row[key]
            yield Item(line, None, row, None)


def _decoded(reader, line_of) -> Iterator[dict]:
    """CSV rows; a byte that is not UTF-8 stops the file at the line it is on."""
    it = iter(reader)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise FileProblem("file_not_utf8", line_of()) from None


def _parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a broken file
        raise FileProblem("bad_parquet", detail=str(err).splitlines()[0]) from None
    n = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            n += 1
            yield Item(n, None, row, None)
