"""Start the Azure ML emulator and print one JSON line (base_url, ca_bundle, env, cloud_metadata, ...).

    python -m azureml_emulator.serve [--job-duration SECONDS] [--no-blob]   (from the folder that holds it)
    python azureml_emulator/serve.py [--job-duration SECONDS] [--no-blob]

Runs until SIGTERM or SIGINT. See README.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # the folder that holds azureml_emulator/

from azureml_emulator.server import Emulator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-duration", type=float, default=20.0, help="seconds from submit to Completed")
    parser.add_argument("--no-blob", action="store_true", help="do not start Azurite (no uploads)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator = Emulator(job_duration=args.job_duration, blob=not args.no_blob).start()
    try:
        print(json.dumps(emulator.info()), flush=True)
        stop.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
