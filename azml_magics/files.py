"""The JSON files we write and the JSON-lines files we read, done one way everywhere.

Why: the state file, the local job folders, the endpoint records and IPython's config are read by
other processes (the trainer, a second notebook, IPython itself) while we write them, so every JSON
write goes to a temporary file in the same folder and is renamed over the old one: a reader sees the
old file or the new one, never half of one. Stdlib only (the trainer and ``%load_ext`` import it).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


def write_json(path: Path | str, data, *, indent: int = 1, sort_keys: bool = False, newline: bool = False,
               fsync: bool = True) -> None:
    """Write ``data`` as JSON at ``path`` atomically (temporary file, then ``os.replace``).

    Values JSON does not know (paths, timestamps) are written as strings. ``fsync`` makes the file
    survive a crash of the machine, not only of this process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent, sort_keys=sort_keys, default=str)
            if newline:
                fh.write("\n")
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path | str) -> dict:
    """The JSON object at ``path``; ``{}`` when there is no file (a bad file raises ``ValueError``)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def iter_jsonl(path: Path | str, *, strict: bool = False) -> Iterator[object]:
    """The rows of a JSON-lines file, streamed; blank lines are skipped.

    A line that is not JSON is skipped, or with ``strict`` raises ``ValueError`` naming the file and
    line. (Training data is checked row by row with reasons by :mod:`azml_magics.data`; this is for
    files already checked: the trainer's input, the chat box's sample prompts.)
    """
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if strict:
                    raise ValueError(f"{path} line {number}: not valid JSON ({exc.msg})") from None


def special_kind(path: Path | str) -> str | None:
    """What ``path`` is when it exists but is not a regular file ("a directory", "a named pipe (FIFO)",
    "a character device" such as /dev/zero, ...); ``None`` for a regular file or a missing path.

    Why: opening a FIFO blocks, reading /dev/zero never ends, and "file not found" for a folder that
    is there sends the user looking in the wrong place; callers say what the path really is.
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"



def require_data_path(path: Path) -> None:
    """A data file or folder that is there and is one (a FIFO or /dev/zero is named for what it is)."""
    from .errors import NotFound, SpecError

    kind = None if path.is_dir() else special_kind(path)
    if kind:
        raise SpecError(f"{path} is {kind}, not a data file or folder; point at a .jsonl file.")
    if not path.exists():
        raise NotFound(f"no such file or folder: {path.resolve()}")

# Our bound on a request file, not Azure's (unknown here): a scoring request is a few conversations of
# JSON text, and the local server takes at most 1 MB. Checked by size before the file is read.
MAX_REQUEST_FILE_BYTES = 16 * 2**20


def read_request_file(path) -> dict:
    """A scoring request from a JSON file (the notebook's ``sample_score.json``), checked to be an object."""
    from .errors import NotFound, SpecError

    path = Path(path)
    kind = special_kind(path)
    if kind:
        raise SpecError(f"request file {path} is {kind}, not a file; pass a JSON file such as sample_score.json.")
    if not path.is_file():
        raise NotFound(f"request file not found: {path}")
    size = path.stat().st_size  # checked before reading: a 3 GB file is refused, not read whole
    if size > MAX_REQUEST_FILE_BYTES:
        raise SpecError(f"request file {path} is {size / 2**20:.1f} MiB, over the {MAX_REQUEST_FILE_BYTES // 2**20} MiB "
                        "a scoring request may be here; send fewer or shorter conversations.")
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"request file {path} is not valid JSON ({exc}); write the scoring request as a JSON object.") from None
    if not isinstance(request, dict):
        raise SpecError(f"request file {path} must hold a JSON object such as "
                        '{"input_data": {"input_string": [...], "parameters": {...}}}.')
    return request
