"""A per-session test CA and the server certificate the emulator and Azurite serve.

Generated with trustme into a private temp dir; the CA bundle is what clients trust through
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``. Nothing is written outside that dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TlsFiles:
    ca_bundle: Path
    cert: Path  # leaf + chain, PEM
    key: Path


def make_tls(directory: Path, account_host: str) -> TlsFiles:
    import trustme

    ca = trustme.CA(organization_name="azml-magics Azure ML emulator test CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", account_host, "*.blob.localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_bundle))
    leaf.private_key_pem.write_to_path(str(files.key))
    with open(files.cert, "wb") as out:
        for pem in leaf.cert_chain_pems:
            out.write(pem.bytes())
    files.key.chmod(0o600)
    return files
