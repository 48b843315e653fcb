"""Browser helpers: a real JupyterLab on 127.0.0.1 and Debian's headless Chromium driven by Playwright.

Everything JupyterLab and IPython write (config, runtime files, workspaces, settings) goes to a
temporary folder; the server is stopped (and with it the kernels) when the test ends.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
