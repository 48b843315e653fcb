"""Execute a notebook headless (a real kernel via nbclient) and print the outputs of its report cells.

    python scripts/run_notebook.py notebooks/quickstart_local.ipynb [--save executed.ipynb] [--timeout 600]

Cells tagged ``report`` have their text output printed here, so a terminal run shows the metrics and
the model's reply. Exits non-zero if any cell fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def text_of(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return data.get("text/plain", "") + ("\n" if data.get("text/plain") else "")


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
    for cell in nb.cells:
        if "report" in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                sys.stdout.write(text_of(output))
    if args.save:
        nbformat.write(nb, args.save)
    print(f"\n{path.name}: {'FAILED' if failed else 'ran'} in {time.monotonic() - start:.0f} s")
    if failed:
        print(str(failed)[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
