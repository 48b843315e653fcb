"""notebooks/azure_phi4_ultrachat.ipynb runs headless, in a real kernel, against the emulator.

The notebook is written for a real workspace: it reads ``config.json`` and the cloud comes from
the SDK's environment variables, which the emulator fixture sets (the kernel inherits them). Like
papermill, the test adds one cell after the ``parameters`` cell: the bundled sample instead of the
hub download (no internet here).
"""

from __future__ import annotations

import json

import pytest
from tests.paths import REPO


pytestmark = [pytest.mark.azure, pytest.mark.slow]

NOTEBOOK = REPO / "notebooks" / "azure_phi4_ultrachat.ipynb"


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
            if out.get("output_type") == "error":
                parts.append(out.get("ename", "") + ": " + out.get("evalue", ""))
    return "\n".join(parts)


def test_azure_notebook_runs_against_the_emulator(azure_emulator, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from azml_magics.data import sample_dir

    emu = azure_emulator
    emu.faults.job_duration = 2.0
    monkeypatch.setenv("AZML_MAGICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text(json.dumps({
        "subscription_id": emu.subscription_id, "resource_group": emu.resource_group,
        "workspace_name": emu.workspace}))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        f"DATA = {str(sample_dir())!r}\nFRACTION = 1.0\n%config AzmlMagics.poll_interval = 0.5"))

    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = outputs_text(nb)
    assert "retired on 2025-08-30" in text  # the original's model, its card says why it cannot be fine-tuned
    assert "Phi-4" in text and "1 of 4 can be fine-tuned now." in text  # the live model, from the list
    assert "Completed" in text
    assert "Deleted:" in text and "endpoint ultrachat-completion-" in text
    assert not emu.state.endpoints and not emu.state.computes  # nothing left billing
    keys = [k for pair in emu.state.endpoint_keys.values() for k in pair if k]
    assert not any(k in text for k in keys)
    created = [e for e in emu.requests() if e["method"] in ("PUT", "POST") and e["route"].endswith("_create")]
    assert {"compute_create", "data_create", "job_create", "model_create", "endpoint_create",
            "deployment_create"} <= {e["route"] for e in created}
