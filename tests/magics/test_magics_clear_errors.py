"""Clear errors where the corpus cannot reach (paths made per test): FIFOs and huge request files,
options before the text of %azml_chat, NaN and unsendable requests through the Python API."""

from __future__ import annotations

import os
import time

import pytest
from IPython.core.error import UsageError

from azml_magics.errors import SpecError
from tests.shell import run_cell


def _one_line_error(ip, cell: str) -> str:
    result, out, _ = run_cell(ip, cell)
    error = result.error_in_exec
    assert isinstance(error, UsageError), (type(error), error, out[-2000:])
    assert "\n" not in str(error) and "Traceback" not in out, out[-2000:]
    return str(error)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("cell", [
    "%azml_chat ep --request-file {fifo}",
    "%azml_data validate {fifo}",
    "%azml_data summary {fifo}",
    "%azml_data prepare {fifo}",
    "%%azml_finetune --dry-run\nmodel: Phi-3-mini-4k-instruct\ndata: {fifo}",
    "%%azml_finetune --dry-run\nmodel: Phi-3-mini-4k-instruct\ndata: {{train: {fifo}}}",
], ids=["chat_request_file", "data_validate", "data_summary", "data_prepare", "finetune_data", "finetune_train"])
def test_a_fifo_is_named_a_fifo_and_never_opened(ip, fifo, cell):
    # opening a FIFO for reading blocks until a writer comes: before the fix some of these hung,
    # the others said "file not found" or "does not exist" of a path that is there
    message = _one_line_error(ip, cell.format(fifo=fifo))
    assert "named pipe (FIFO)" in message and "not found" not in message, message


def test_a_huge_request_file_is_refused_by_its_size_before_it_is_read(ip, tmp_path):
    huge = tmp_path / "score.json"
    with open(huge, "wb") as fh:  # 3 GB, sparse: nothing is written, but reading it would take 3 GB
        fh.truncate(3 * 2**30)
    started = time.monotonic()
    message = _one_line_error(ip, f"%azml_chat ep --request-file {huge}")
    assert time.monotonic() - started < 1.0
    assert "3072.0 MiB" in message and "over the 16 MiB" in message, message


def test_options_may_come_before_the_text(ip):
    from azml_magics.magic_parsers import PARSERS

    args = PARSERS["azml_chat"].parse('ep --greedy --max-new-tokens 5 "some text"')
    # the words after the endpoint are a list: one quoted message, or more endpoints (side by side)
    assert (args.endpoint, args.text, args.greedy, args.max_new_tokens) == ("ep", ["some text"], True, 5)
    # through the magic: the endpoint is looked up (there is none), the line itself is accepted
    message = _one_line_error(ip, '%azml_chat ep --greedy "some text"')
    assert message.startswith("no endpoint named 'ep'"), message


@pytest.mark.parametrize("request_body, expect", [
    ({"input_data": {"input_string": [], "parameters": {"temperature": float("nan")}}}, "holds NaN or Infinity"),
    ({"input_data": {"input_string": [], "parameters": {"top_p": float("inf")}}}, "holds NaN or Infinity"),
    ({"input_data": {"input_string": {"a", "b"}}}, "Object of type set is not JSON serializable"),
    ({"input_data": object()}, "Object of type object is not JSON serializable"),
])
def test_invoke_refuses_what_json_cannot_carry_in_one_line(ip, request_body, expect):
    run_cell(ip, "%azml_connect --backend local")
    with pytest.raises(SpecError) as caught:
        ip.azml.session.invoke("ep", request_body)
    assert expect in str(caught.value) and "\n" not in str(caught.value)

