"""scripts/run_notebook.py prints a short account: one line per cell with its time, report text under it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_account_is_one_line_per_cell_with_report_text_indented(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    quiet = nbformat.v4.new_code_cell("# set up\nx = 6 * 7\nprint('chatter nobody asked for')")
    report = nbformat.v4.new_code_cell("print(f'answer: {x}')", metadata={"tags": ["report"]})
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), quiet, report]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(path),
                          "--save", str(tmp_path / "out.ipynb")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "tiny.ipynb:"
    assert re.fullmatch(r"  x = 6 \* 7\s+\d+\.\d s", lines[1]), lines[1]  # the first line that is not a comment
    assert re.fullmatch(r"  print\(f'answer: \{x\}'\)\s+\d+\.\d s", lines[2]), lines[2]
    assert lines[3] == "      answer: 42"
    assert "chatter" not in run.stdout  # only report cells print their output
    assert re.fullmatch(rf"tiny.ipynb: ran in \d+ s; the executed notebook is {re.escape(str(tmp_path / 'out.ipynb'))}",
                        lines[4])
    assert len(lines) == 5


def test_a_wait_in_a_real_kernel_is_a_widget_bar_whose_saved_twin_ends_done(tmp_path):
    """In a kernel (nbclient starts a real ipykernel) a wait over its threshold draws the ipywidgets bar
    from its ticker thread into the running cell; the executed notebook keeps beside it the saved twin
    with the final line, and the account prints that line, not the widget's repr."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    code = ("%load_ext azml_magics\nimport time\nfrom azml_magics.waits import wait\n"
            "with wait('Counting rows', total=3, unit='rows') as w:\n"
            "    for _ in range(3):\n        time.sleep(0.6)\n        w.advance()")
    nb.cells = [nbformat.v4.new_code_cell(code, metadata={"tags": ["report"]})]
    path, saved = tmp_path / "wait.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, path)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(path), "--save", str(saved)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    outputs = nbformat.read(saved, as_version=4).cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    twin = [o for o in outputs if "azml-wait-record" in o.get("data", {}).get("text/html", "")]
    assert len(twin) == 1, outputs  # updated in place: one output, holding the final state
    assert re.fullmatch(r"Counting rows: done in 1\.\d s · 3 / 3 rows · \d(\.\d)? rows/s", twin[0].data["text/plain"])
    assert re.search(r"^      Counting rows: done in 1\.\d s", run.stdout, re.M), run.stdout
    assert "HBox" not in run.stdout and "FloatProgress" not in run.stdout
