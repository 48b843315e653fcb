"""The per-workspace record survives restarts, is written atomically and never holds secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from azml_magics.state import WorkspaceState


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


def test_corrupt_file_is_set_aside_not_fatal(tmp_path):
    st = WorkspaceState(tmp_path, "w")
    st.add("jobs", "j")
    st.path.write_text("{not json")
    again = WorkspaceState(tmp_path, "w")
    assert again.is_empty()
    assert any(p.name.startswith(st.path.stem) and ".broken-" in p.name for p in st.path.parent.iterdir())
