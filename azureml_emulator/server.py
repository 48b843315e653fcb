"""The emulator process: HTTPS app (uvicorn in a thread), CONNECT proxy, Azurite; start and stop.

``Emulator`` is the one public handle: ``start()``, ``stop()``, ``info()`` (what serve.py prints),
``env`` (what a client process needs), ``faults`` (switch faults on), ``requests()`` (the log).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from .state import EmulatorState

SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
RESOURCE_GROUP = "rg-emulator"
WORKSPACE = "ws-emulator"
REGISTRY = "azureml"
TENANT_ID = "adfs"  # see README: ADFS-style tenant skips MSAL's instance discovery on the public cloud
STORAGE_ACCOUNT = "wsemulatorstore"


class Emulator:
    """An Azure ML REST emulator on https://127.0.0.1:PORT (see README.md)."""

    def __init__(self, *, job_duration: float = 3.0, blob: bool = True, lro_retry_after: float = 0.1) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="azml-emulator-"))
        self._blob_enabled = blob
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.cloud_name = f"AzureMLEmulator{self.port}"
        self.subscription_id, self.resource_group = SUBSCRIPTION_ID, RESOURCE_GROUP
        self.workspace, self.registry = WORKSPACE, REGISTRY
        self.storage_account = STORAGE_ACCOUNT
        self.state = EmulatorState(self, job_duration=job_duration, lro_retry_after=lro_retry_after)
        self.faults = self.state.faults
        self._azurite = None
        self._proxy = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._blob_ready = threading.Event()
        self._blob_error: Exception | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "Emulator":
        import uvicorn

        from .app import build_app
        from .tls import make_tls

        self.tls = make_tls(self._tmp, f"{STORAGE_ACCOUNT}.blob.localhost")
        if self._blob_enabled:
            from .blob import Azurite
            from .proxy import LocalhostProxy

            self._azurite = Azurite(self._tmp, self.tls.cert, self.tls.key, STORAGE_ACCOUNT).start()
            self._proxy = LocalhostProxy(self._route_connection).start()
        config = uvicorn.Config(
            build_app(self.state), log_level="critical", ssl_certfile=str(self.tls.cert),
            ssl_keyfile=str(self.tls.key), lifespan="off", access_log=False, timeout_graceful_shutdown=1,
            server_header=False,  # the storage gate answers with storage's own Server header
        )
        self._server = uvicorn.Server(config)
        self._sock.listen(128)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="azure-ml-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Azure ML emulator failed to start")
            time.sleep(0.01)
        if self._azurite is not None:
            # Azurite (node) takes a second or more to listen: finish it in the background so start()
            # stays well under 3 s; the datastore routes wait for it (see wait_blob_ready).
            self._blob_thread = threading.Thread(target=self._prepare_blob, name="emulator-azurite", daemon=True)
            self._blob_thread.start()
        return self

    def _route_connection(self, host: str, port: int) -> int:
        """Blob connections go through the storage gate while the user's data role is not a writing one."""
        from .storage_gate import needs_gate

        if self._azurite is not None and port == self._azurite.port and host.endswith(".blob.localhost") \
                and needs_gate(self.state):
            return self.port
        return port

    def _prepare_blob(self) -> None:
        from .routes_workspace import BLOB_CONTAINER
        from .run_logs import LOG_CONTAINER

        try:
            self._azurite.wait_ready(30.0)
            self._azurite.create_container(BLOB_CONTAINER, self.tls.ca_bundle)
            self._azurite.create_container(LOG_CONTAINER, self.tls.ca_bundle)
        except Exception as err:  # reported by wait_blob_ready
            self._blob_error = err
        finally:
            self._blob_ready.set()

    def wait_blob_ready(self, timeout: float = 30.0) -> None:
        """Block until Azurite serves the workspace container (raise if it failed to start)."""
        if self._azurite is None:
            return
        if not self._blob_ready.wait(timeout) or self._blob_error is not None:
            raise RuntimeError(f"Azurite is not ready: {self._blob_error or 'timed out'}")

    def stop(self) -> None:
        self.state.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()
        if self._proxy is not None:
            self._proxy.stop()
        if self._azurite is not None:
            self._azurite.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what clients need -----------------------------------------------------------------------
    @property
    def blob_enabled(self) -> bool:
        """Whether Azurite serves blobs (uploads, log files); False with ``blob=False`` / ``--no-blob``."""
        return self._azurite is not None

    @property
    def azurite_port(self) -> int | None:
        return self._azurite.port if self._azurite is not None else None

    @property
    def storage_suffix(self) -> str:
        port = self._azurite.port if self._azurite is not None else self.port
        return f"localhost:{port}"

    @property
    def storage_account_key(self) -> str:
        return self._azurite.key if self._azurite is not None else ""

    @property
    def cloud_metadata(self) -> dict[str, str]:
        """For ``MLClient(..., cloud=cloud_name, cloud_metadata=...)`` (the SDK's own key names)."""
        return {
            "azure_portal": "https://portal.emulator.localhost/",
            "resource_manager": f"{self.base_url}/",
            "active_directory": f"{self.base_url}/",
            "aml_resource_id": "https://ml.azure.localhost",
            "storage_endpoint": self.storage_suffix,
            "registry_discovery_endpoint": f"{self.base_url}/",
        }

    @property
    def env(self) -> dict[str, str]:
        env = {
            "ARM_CLOUD_METADATA_URL": f"{self.base_url}/metadata/endpoints?api-version=2019-05-01",
            "AZUREML_CURRENT_CLOUD": self.cloud_name,
            "REGISTRY_DISCOVERY_ENDPOINT_URL": f"{self.base_url}/",
            "REQUESTS_CA_BUNDLE": str(self.tls.ca_bundle),
            "SSL_CERT_FILE": str(self.tls.ca_bundle),
            "AZURE_AUTHORITY_HOST": f"{self.base_url}/",
            "AZURE_TENANT_ID": TENANT_ID,
            "AZURE_CLIENT_ID": "emulator-client",
            "AZURE_CLIENT_SECRET": "emulator-secret",
            # the SDK's own knob: jobs.stream polls every 2 s at least by default
            "AZUREML_RUN_POLLING_INTERVAL_MIN": "1",
        }
        if self._proxy is not None:
            env["HTTPS_PROXY"] = env["https_proxy"] = self._proxy.url
            env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
        return env

    def info(self) -> dict:
        """The JSON line serve.py prints."""
        return {
            "base_url": self.base_url,
            "ca_bundle": str(self.tls.ca_bundle),
            "env": self.env,
            "cloud": self.cloud_name,
            "cloud_metadata": self.cloud_metadata,
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace": self.workspace,
            "registry": self.registry,
            "mlflow_tracking_uri": self.mlflow_tracking_uri,
        }

    @property
    def mlflow_tracking_uri(self) -> str:
        """The https MLflow REST root of the workspace (the https form of its ``mlflow_tracking_uri``)."""
        from .routes_workspace import tracking_uri

        return "https://" + tracking_uri(self.state).removeprefix("azureml://")

    def list_blobs(self) -> list[str]:
        """Blob names in the workspace container (read from Azurite directly, for assertions)."""
        from azure.storage.blob import BlobServiceClient

        from .routes_workspace import BLOB_CONTAINER

        self.wait_blob_ready()
        client = BlobServiceClient(f"https://127.0.0.1:{self._azurite.port}/{self.storage_account}",
                                   credential={"account_name": self.storage_account,
                                               "account_key": self.storage_account_key},
                                   connection_verify=str(self.tls.ca_bundle))
        with client:
            return [b.name for b in client.get_container_client(BLOB_CONTAINER).list_blobs()]

    def requests(self) -> list[dict]:
        return self.state.request_log()

    def responses(self) -> list[dict]:
        """What each route answered: ``{"route", "method", "path", "query", "status", "json"}``
        (Python only, never over HTTP: bodies carry keys and SAS tokens)."""
        return self.state.response_log()
