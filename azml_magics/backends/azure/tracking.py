"""An MlflowClient on the workspace's MLflow, signed with the backend's own Entra credential.

Microsoft's plugin, azureml-mlflow, turns the workspace's ``azureml://<host>/mlflow/v1.0/<scope>`` into
``https://<host>/mlflow/v2.0/<scope>`` for MLflow 2 and 3 and hands MLflow's REST store an Entra token
(azureml-mlflow 1.62.0.post6, MIT: ``azureml/mlflow/_store/azureml_reststore.py``, get_host_credentials).
That release pins ``mlflow-skinny<=3.15.0``, so it cannot sit beside the MLflow 3.17 we install; this
module does the same for the tracking API, as an MLflow tracking-store plugin (entry point group
``mlflow.tracking_store``, scheme ``azml-azureml``). The token is fetched per request from the
credential and never put in the environment (MLFLOW_TRACKING_TOKEN would show in ``%env``).

Files (artifacts) are not covered: a workspace run's artifact URI is ``azureml://...``, which only the
plugin's artifact client can write. ``Tracking.artifacts`` is False here, and the caller says so.
"""

from __future__ import annotations

import threading

SCHEME = "azml-azureml"
_credentials: dict[str, object] = {}  # https root -> credential, set by tracking() below
_lock = threading.Lock()


def https_root(tracking_uri: str) -> str:
    """``azureml://host/mlflow/v1.0/<scope>`` -> ``https://host/mlflow/v2.0/<scope>`` (as the plugin does)."""
    rest = tracking_uri.split("://", 1)[1].rstrip("/")
    return "https://" + rest.replace("/mlflow/v1.0/", "/mlflow/v2.0/", 1)


def store_uri(tracking_uri: str, credential) -> str:
    """The MLflow tracking URI of this workspace for MlflowClient; remembers the credential for it."""
    root = https_root(tracking_uri)
    with _lock:
        _credentials[root] = credential
    return SCHEME + "://" + root[len("https://"):]


def build_store(store_uri: str, artifact_uri: str | None = None):
    """The ``mlflow.tracking_store`` plugin entry point: MLflow's own REST store with a fresh token."""
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.utils.rest_utils import MlflowHostCreds

    from .jobs import aml_scope

    root = "https://" + store_uri.split("://", 1)[1]
    with _lock:
        credential = _credentials.get(root)
    if credential is None:
        raise RuntimeError(f"no Azure credential for {root}: connect with %azml_connect --backend azure first.")

    def creds() -> MlflowHostCreds:
        return MlflowHostCreds(root, token=credential.get_token(aml_scope()).token)

    return RestStore(creds)


def client(tracking_uri: str, credential):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store_uri(tracking_uri, credential))
