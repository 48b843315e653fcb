"""IPython start-up time with and without `%load_ext azml_magics`, in fresh processes.

Runs are interleaved so machine noise hits both sides alike; medians are compared.
Last line: ``load_ext: ratio=<with/without> heavy_modules=<count imported>``. Target: ratio <= 1.3, 0 heavy.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

HEAVY = ["azure.ai.ml", "azure.identity", "torch", "transformers", "mlflow", "datasets", "pandas", "peft",
         "trl", "matplotlib", "ipywidgets"]

START = "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()\n"
WITH = START + "ip.run_line_magic('load_ext', 'azml_magics')\n"
PROBE = WITH + f"import sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"


def run(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(runs: int = 11) -> None:
    run(START), run(WITH)  # warm the OS file cache
    without, with_ext = [], []
    for _ in range(runs):
        without.append(run(START))
        with_ext.append(run(WITH))
    heavy = json.loads(subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1])
    m0, m1 = statistics.median(without), statistics.median(with_ext)
    print(f"IPython start without: median {m0 * 1000:.0f} ms over {runs} runs")
    print(f"IPython start with %load_ext azml_magics: median {m1 * 1000:.0f} ms")
    print(f"heavy modules imported by %load_ext: {heavy or 'none'}")
    print(f"load_ext: ratio={m1 / m0:.3f} heavy_modules={len(heavy)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
