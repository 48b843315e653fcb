"""The bad-input corpus: one file a case under ``bad_inputs/`` (``# expect: <the verdict>`` then the
cell), each run in a real IPython shell on the local backend.

Every case must end in ONE line (IPython's UsageError, no traceback) that holds its expected verdict,
within a couple of seconds (a billion-laughs cell used to run for minutes), and must leave nothing
behind: no data written, no job folder, nothing outside the home.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from tests.shell import run_cell

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(CORPUS.glob("*.cell"))


def read_case(path: Path) -> tuple[str, str]:
    first, cell = path.read_text().split("\n", 1)
    assert first.startswith("# expect: "), f"{path.name}: the first line must be '# expect: <verdict>'"
    return first[len("# expect: "):], cell


def test_the_corpus_is_there():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_each_bad_input_gets_one_line_and_leaves_nothing(ip, azml_home, tmp_path, path):
    expect, cell = read_case(path)
    outside = sorted(p.name for p in tmp_path.iterdir() if p != azml_home)
    started = time.monotonic()
    result, out, _ = run_cell(ip, cell.rstrip("\n"))
    took = time.monotonic() - started
    error = result.error_in_exec
    assert isinstance(error, UsageError), (type(error), error, out[-2000:])
    message = str(error)
    assert "\n" not in message and "Traceback" not in out, out[-2000:]
    assert expect in message, message
    assert took < 3.0, f"{path.name} took {took:.1f} s"
    assert not (azml_home / "data").exists() and not list((azml_home / "jobs").glob("*"))
    assert sorted(p.name for p in tmp_path.iterdir() if p != azml_home) == outside  # nothing beside the home
