"""Run the transcribed seed-notebook cells in one namespace, in a working directory, like a kernel."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

CELLS_FILE = Path(__file__).with_name("seed_cells.py")


def load_cells() -> dict[str, str]:
    """Cell name -> source, in notebook order."""
    cells: dict[str, str] = {}
    name = None
    for line in CELLS_FILE.read_text().splitlines(keepends=True):
        if line.startswith("# %% "):
            name = line[5:].strip()
            cells[name] = ""
        elif name is not None:
            cells[name] += line
    return cells


def sample_splits(rows: int = 12) -> dict[str, list[dict]]:
    """ultrachat_200k-shaped rows (prompt, prompt_id, messages) for the four split files."""
    def row(split: str, i: int) -> dict:
        prompt = f"[{split} {i}] How do I keep a sourdough starter alive while travelling for {i + 2} days?"
        return {"prompt": prompt, "prompt_id": f"{split}-{i:04d}", "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": f"Feed it, chill it, and it keeps for about {i + 2} days."},
            {"role": "user", "content": "And after that?"},
            {"role": "assistant", "content": "Refresh it twice at room temperature before baking."},
        ]}
    return {s: [row(s, i) for i in range(rows)] for s in ("train_sft", "test_sft", "train_gen", "test_gen")}


@dataclass
class NotebookRun:
    namespace: dict
    outputs: dict[str, str] = field(default_factory=dict)

    def run(self, name: str, source: str, cwd: Path) -> None:
        buf = io.StringIO()
        old = os.getcwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(source, f"<cell {name}>", "exec"), self.namespace)
        finally:
            os.chdir(old)
            self.outputs[name] = buf.getvalue()


def run_cells(emulator, cwd: Path, *, until: str | None = None, names: list[str] | None = None) -> NotebookRun:
    """Run the cells in order (all, or up to and including UNTIL); raises what a cell raises."""
    nb = NotebookRun({"__name__": "__main__", "SUBSCRIPTION_ID": emulator.subscription_id,
                      "RESOURCE_GROUP": emulator.resource_group, "WORKSPACE_NAME": emulator.workspace,
                      "SAMPLE_SPLITS": sample_splits()})
    for name, source in load_cells().items():
        if names is None or name in names:
            nb.run(name, source, cwd)
        if name == until:
            break
    return nb
