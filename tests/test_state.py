"""The per-workspace record survives restarts, is written atomically and never holds secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from azml_magics.state import WorkspaceState
from tests.paths import REPO as ROOT


def test_records_survive_a_new_process(tmp_path):
    st = WorkspaceState(tmp_path, "local:/x")
    st.add("jobs", "job-1", state="Running")
    st.add("endpoints", "ep-1", model="m:1")
    code = (
        "from azml_magics.state import WorkspaceState;"
        f"s=WorkspaceState({str(tmp_path)!r}, 'local:/x');"
        "print(s.get('jobs','job-1').info['state'], [r.name for r in s.list('endpoints')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Running ['ep-1']"


def test_workspaces_are_separate(tmp_path):
    WorkspaceState(tmp_path, "azure:sub/rg/ws1").add("endpoints", "a")
    assert WorkspaceState(tmp_path, "azure:sub/rg/ws2").is_empty()
    assert WorkspaceState(tmp_path, "azure:sub/rg/ws1").counts()["endpoints"] == 1


def test_update_and_remove(tmp_path):
    st = WorkspaceState(tmp_path, "w")
    st.add("jobs", "j", state="Queued")
    st.update("jobs", "j", state="Completed")
    assert WorkspaceState(tmp_path, "w").get("jobs", "j").info["state"] == "Completed"
    assert st.remove("jobs", "j") and not st.remove("jobs", "j")
    assert WorkspaceState(tmp_path, "w").is_empty()


def test_written_atomically_no_temp_files_left(tmp_path):
    st = WorkspaceState(tmp_path, "w")
    for i in range(20):
        st.add("jobs", f"j{i}")
    files = os.listdir(st.path.parent)
    assert files == [st.path.name]
    assert len(json.loads(st.path.read_text())["jobs"]) == 20


def test_refuses_secrets(tmp_path):
    st = WorkspaceState(tmp_path, "w")
    with pytest.raises(ValueError, match="secrets never go to disk"):
        st.add("endpoints", "e", primary_key="abc")
    assert st.is_empty()


def _kept(st):
    return sorted(p for p in st.path.parent.iterdir() if ".broken-" in p.name)


@pytest.mark.parametrize("damage, why", [
    (b"{not json", "not valid JSON"),
    (b'{"jobs": {"j": {"created": 1', "not valid JSON"),  # half-written
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"[1, 2, 3]", "JSON list"),
    (b'{"jobs": [1]}', "'jobs' is a list"),
    (b'{"jobs": {"j": {"info": {}}}}', "wrong shape"),
    (b"[" * 100000, "nested too deeply"),
])
def test_damaged_file_is_kept_reported_in_one_line_and_rebuilt(tmp_path, damage, why):
    st = WorkspaceState(tmp_path, "w")
    st.add("jobs", "j")
    st.path.write_bytes(damage)
    found = {"endpoints": {"ep-running": {"model": "m:1"}}, "jobs": {"j": {"state": "Running"}}}
    again = WorkspaceState(tmp_path, "w", recover=lambda: found)
    [line] = again.take_problems()
    assert "\n" not in line and why in line and "kept it as" in line and "1 endpoints, 1 jobs" in line
    assert [r.name for r in again.list("endpoints")] == ["ep-running"]
    assert again.get("jobs", "j").info == {"state": "Running", "recovered": True}
    [kept] = _kept(st)
    assert kept.read_bytes() == damage  # the damaged file itself, untouched
    assert not again.take_problems()  # reported once


def test_a_second_damage_never_overwrites_the_first_copy(tmp_path):
    st = WorkspaceState(tmp_path, "w")
    st.path.parent.mkdir(parents=True)
    st.path.write_text("first damage")
    WorkspaceState(tmp_path, "w")
    st.path.write_text("second damage")
    WorkspaceState(tmp_path, "w")
    assert sorted(p.read_text() for p in _kept(st)) == ["first damage", "second damage"]


def test_damage_while_open_is_found_at_the_next_read(tmp_path):
    st = WorkspaceState(tmp_path, "w", recover=lambda: {"endpoints": {"e": {}}})
    st.add("endpoints", "e")
    st.path.write_text("garbage")  # another program (or a full disk) broke it meanwhile
    assert [r.name for r in st.list("endpoints")] == ["e"]
    assert len(st.take_problems()) == 1 and len(_kept(st)) == 1


def test_unreadable_file_is_one_line_not_a_traceback(tmp_path):
    """A state path that cannot be read (here a folder: permissions do not stop root) is one line."""
    from azml_magics.errors import AzmlError

    st = WorkspaceState(tmp_path, "w")
    st.path.unlink(missing_ok=True)
    st.path.mkdir(parents=True)
    with pytest.raises(AzmlError, match=r"cannot read the state file .*\(Is a directory\); make it a file this kernel can read"):
        WorkspaceState(tmp_path, "w")


def test_a_second_session_sees_the_first_ones_records(tmp_path):
    one, two = WorkspaceState(tmp_path, "w"), WorkspaceState(tmp_path, "w")
    one.add("endpoints", "a")
    two.add("endpoints", "b")  # two never re-read the file before this change
    one.add("jobs", "j")
    assert [r.name for r in WorkspaceState(tmp_path, "w").list("endpoints")] == ["a", "b"]
    assert [r.name for r in two.list("jobs")] == ["j"]


_WORKER = """
import sys
from azml_magics.state import WorkspaceState
from tests.paths import REPO as ROOT
home, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = WorkspaceState(home, "local:/shared")
for i in range(n):
    st.add("endpoints", f"{me}-ep{i}", model="m:1")
    st.add("jobs", f"{me}-job{i}", state="Queued")
    st.update("jobs", f"{me}-job{i}", state="Completed")
    st.add("data", f"{me}-tmp{i}")
    assert st.remove("data", f"{me}-tmp{i}")
    st.update("jobs", "shared-job", **{me: i})
"""


def test_kernels_on_one_home_at_once_lose_no_record(tmp_path):
    """Four processes add, update and remove records at the same moment; every change is kept."""
    WorkspaceState(tmp_path, "local:/shared").add("jobs", "shared-job")
    n, workers = 15, [f"k{i}" for i in range(4)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), me, str(n)], env=env,
                              stderr=subprocess.PIPE, text=True) for me in workers]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    st = WorkspaceState(tmp_path, "local:/shared")
    assert {r.name for r in st.list("endpoints")} == {f"{me}-ep{i}" for me in workers for i in range(n)}
    jobs = {r.name: r.info for r in st.list("jobs")}
    assert all(jobs[f"{me}-job{i}"]["state"] == "Completed" for me in workers for i in range(n))
    assert jobs["shared-job"] == {me: n - 1 for me in workers}
    assert st.counts()["data"] == 0 and not st.take_problems()
