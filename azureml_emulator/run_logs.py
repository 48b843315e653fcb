"""Run log files as the service hands them out: blobs in the workspace storage account's ``azureml``
container (``ExperimentRun/dcid.<run id>/<path>``), reached through read-only blob SAS URLs.

The logs grow with the job's clock, so each run-history read uploads a file's current text to Azurite
when it changed, then answers with a fresh SAS URL. Without Azurite (``--no-blob``) the URL points at
the emulator's own ``/_logs`` route instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

LOG_CONTAINER = "azureml"


class RunLogs:
    def __init__(self, emulator) -> None:
        self.emulator = emulator
        self._uploaded: dict[str, str] = {}  # blob name -> text last uploaded
        self._container = None

    def _client(self):
        if self._container is None:
            from azure.storage.blob import BlobServiceClient

            emu = self.emulator
            emu.wait_blob_ready()
            service = BlobServiceClient(f"https://127.0.0.1:{emu.azurite_port}/{emu.storage_account}",
                                        credential={"account_name": emu.storage_account,
                                                    "account_key": emu.storage_account_key},
                                        connection_verify=str(emu.tls.ca_bundle))
            self._container = service.get_container_client(LOG_CONTAINER)
        return self._container

    def url(self, run_id: str, path: str, text: str) -> str:
        """A URL that serves TEXT as the run's log file PATH."""
        emu = self.emulator
        if not emu.blob_enabled:
            return f"{emu.base_url}/_logs/{run_id}/{path}?sv=2019-02-02&sr=b&sig=emulated"
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        blob = f"ExperimentRun/dcid.{run_id}/{path}"
        if self._uploaded.get(blob) != text:
            self._client().upload_blob(blob, text.encode(), overwrite=True)
            self._uploaded[blob] = text
        sas = generate_blob_sas(emu.storage_account, LOG_CONTAINER, blob, account_key=emu.storage_account_key,
                                permission=BlobSasPermissions(read=True),
                                expiry=datetime.now(timezone.utc) + timedelta(hours=1))
        return f"https://{emu.storage_account}.blob.{emu.storage_suffix}/{LOG_CONTAINER}/{blob}?{sas}"

    def reset(self) -> None:
        self._uploaded.clear()
