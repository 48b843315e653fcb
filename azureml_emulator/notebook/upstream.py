"""Run the upstream chat-completion notebook's code cells, unmodified, like a kernel.

The notebook is Microsoft's code, so it is not committed here: it is read from the team's shared data
(``../shared/data/azureml-examples/chat-completion.ipynb``) or from ``$AZML_UPSTREAM_NOTEBOOK``;
upstream/SOURCE.md names the file, its commit and its sha256. Only three things differ from a user's
run: the pip cell is skipped, the
download cell is replaced by the bundled sample, and config.json points MLClient.from_config at the
emulator. Everything else is the notebook's own source, executed in one namespace, in order.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from azureml_emulator.notebook.runner import NotebookRun

SHA256 = "a4c0a510aef18ff2d79edc83a69cd7425afbd4854afd4483554632f4ea0dc3ab"  # upstream/SOURCE.md
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azureml-examples" / "chat-completion.ipynb"


def notebook_path() -> Path | None:
    """Where the upstream notebook is on this machine (None: not provided)."""
    import os

    path = Path(os.environ.get("AZML_UPSTREAM_NOTEBOOK") or SHARED)
    return path if path.is_file() else None
SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")


@dataclass
class UpstreamCell:
    index: int  # the cell's index in the notebook (markdown cells counted), as a reader finds it
    source: str

    @property
    def skipped(self) -> bool:
        return self.source.lstrip().startswith("%pip")

    @property
    def downloads(self) -> bool:
        return "download-dataset.py" in self.source


def code_cells() -> list[UpstreamCell]:
    import hashlib

    path = notebook_path()
    if path is None:
        raise FileNotFoundError(f"the upstream notebook is not on this machine (looked for {SHARED})")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise ValueError(f"{path} is not the notebook upstream/SOURCE.md names (sha256 differs)")
    nb = json.loads(data)
    return [UpstreamCell(i, "".join(c["source"])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


@dataclass
class UpstreamRun:
    run: NotebookRun
    ran: list[int] = field(default_factory=list)  # cells that completed
    failed: UpstreamCell | None = None
    error: BaseException | None = None

    @property
    def namespace(self) -> dict:
        return self.run.namespace


def write_sample(cwd: Path, sample: Path) -> None:
    """Stand-in for download-dataset.py: the four split files where the notebook reads them."""
    folder = cwd / "ultrachat_200k_dataset"
    folder.mkdir(exist_ok=True)
    for split in SPLITS:
        shutil.copyfile(sample / f"{split}.jsonl", folder / f"{split}.jsonl")


def run_upstream(emulator, cwd: Path, sample: Path) -> UpstreamRun:
    """Run every code cell in order; stop at the first that raises and keep what it raised."""
    (cwd / "config.json").write_text(json.dumps({
        "subscription_id": emulator.subscription_id, "resource_group": emulator.resource_group,
        "workspace_name": emulator.workspace}))
    result = UpstreamRun(NotebookRun({"__name__": "__main__"}))
    for cell in code_cells():
        if cell.skipped:
            continue
        try:
            if cell.downloads:
                write_sample(cwd, sample)
            else:
                result.run.run(f"upstream {cell.index}", cell.source, cwd)
        except Exception as exc:  # noqa: BLE001 - the notebook's own failure is the result
            result.failed, result.error = cell, exc
            return result
        result.ran.append(cell.index)
    return result
