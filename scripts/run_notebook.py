"""Execute a notebook headless (a real kernel via nbclient) and print the outputs of its report cells.

    python scripts/run_notebook.py notebooks/quickstart_local.ipynb [--save executed.ipynb] [--timeout 600]

It prints a short account: one line per code cell (what it ran and how long it took), and under the
cells tagged ``report`` their text output (the metrics, the model's reply). Exits non-zero if any
cell fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path


def text_of(output) -> str:
    """An output as text: a redrawn line as its last state; a widget says nothing (its saved twin, the
    output beside it, carries the text)."""
    if output.get("output_type") == "stream":
        return "\n".join(line.split("\r")[-1] for line in output.get("text", "").split("\n"))
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:
        return ""
    return data.get("text/plain", "") + ("\n" if data.get("text/plain") else "")


def seconds(cell) -> float | None:
    """How long the cell ran, from the timings nbclient records in its metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def account(nb) -> list[str]:
    """One line per code cell that ran (its first line and its time), then a report cell's text indented."""
    lines = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code" or cell.get("execution_count") is None:
            continue
        first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")
        took = seconds(cell)
        lines.append(f"  {first[:70]:<70} {f'{took:5.1f} s' if took is not None else ''}".rstrip())
        if "report" in cell.get("metadata", {}).get("tags", []):
            text = "".join(text_of(o) for o in cell.get("outputs", [])).strip()
            lines += ["      " + ln for ln in text.splitlines()]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--save", help="write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(args.notebook)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    failed = None
    try:
        client.execute()
    except CellExecutionError as exc:
        failed = exc
    print(f"{path.name}:")
    print("\n".join(account(nb)))
    if args.save:
        nbformat.write(nb, args.save)
    saved = f"; the executed notebook is {args.save}" if args.save else ""
    print(f"{path.name}: {'FAILED' if failed else 'ran'} in {time.monotonic() - start:.0f} s{saved}")
    if failed:
        print(str(failed)[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
