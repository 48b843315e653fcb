"""Blob storage for uploads: the real Azurite (npm), started on loopback with the emulator's cert.

Azurite serves production-style URLs for hosts ``<account>.blob.localhost``, which is what the SDK
builds from the storage suffix ``localhost:PORT``; the proxy in :mod:`proxy` makes that host reach
127.0.0.1. Installed by ``.ci/azurite.sh`` into ``.ci/node_modules`` (git-ignored).
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the checkout: .ci/ holds Azurite
AZURITE_BIN = REPO / ".ci" / "node_modules" / ".bin" / "azurite-blob"
INSTALL_SCRIPT = REPO / ".ci" / "azurite.sh"


def ensure_azurite() -> Path:
    """Install Azurite with .ci/azurite.sh if it is not there yet (npm registry; about 15 s once)."""
    if not AZURITE_BIN.exists():
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    return AZURITE_BIN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    """One azurite-blob process serving one storage account over TLS."""

    def __init__(self, workdir: Path, cert: Path, key: Path, account: str) -> None:
        self.account = account
        self.key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.port = _free_port()
        self.host = f"{account}.blob.localhost"
        self.account_url = f"https://{self.host}:{self.port}"
        self._workdir = workdir
        self._cert, self._key = cert, key
        self._proc: subprocess.Popen | None = None

    def start(self) -> "Azurite":
        binary = ensure_azurite()
        data = self._workdir / "azurite"
        data.mkdir(exist_ok=True)
        env = dict(os.environ, AZURITE_ACCOUNTS=f"{self.account}:{self.key}")
        self._log = open(self._workdir / "azurite.log", "wb")
        self._proc = subprocess.Popen(
            [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--loose",
             "--skipApiVersionCheck", "--disableTelemetry", "--oauth", "basic", "--cert", str(self._cert),
             "--key", str(self._key), "--location", str(data), "--silent"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"azurite exited: {(self._workdir / 'azurite.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("azurite did not start in time")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def create_container(self, name: str, ca_bundle: Path) -> None:
        """The workspace's blob container exists from the start, as in a real workspace."""
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient(f"https://127.0.0.1:{self.port}/{self.account}",
                                   credential={"account_name": self.account, "account_key": self.key},
                                   connection_verify=str(ca_bundle))
        with client:
            client.create_container(name)
