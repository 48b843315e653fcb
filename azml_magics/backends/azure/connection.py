"""Credentials and clients: the notebook's connect cell, with its silent fallbacks made explicit.

The cloud (public, sovereign, or any custom one) is chosen by the SDK's own environment variables
(``AZUREML_CURRENT_CLOUD``, ``ARM_CLOUD_METADATA_URL``, ``REGISTRY_DISCOVERY_ENDPOINT_URL``); nothing
here knows about a particular cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...defaults import CREDENTIALS
from ...errors import AzmlError, NotConnected
from .remote import remote_error

# MLClient(show_progress=...): the SDK's own tqdm bars on uploads would spill into the cell beside our
# wait line (azure.ai.ml _ml_client.py: "show_progress: Specifies whether or not to display progress
# bars for long-running operations (e.g. customer files uploads)", default True)
SDK_BARS = False


@dataclass
class Clients:
    """What ``connect`` builds: the credential and the two SDK clients of the notebook."""

    credential: object
    credential_name: str
    workspace: object  # MLClient for the workspace
    registry: object  # MLClient for the registry (azureml by default)
    registry_name: str
    subscription_id: str
    resource_group: str
    workspace_name: str


def management_scope() -> str:
    """The token scope of the current cloud's resource manager (management.azure.com on the public one)."""
    try:
        from azure.ai.ml._azure_environments import _get_base_url_from_metadata

        base = _get_base_url_from_metadata()
    except Exception:  # an unknown cloud surfaces later, with the SDK's own message
        base = "https://management.azure.com/"
    return base.rstrip("/") + "/.default"


def make_credential(kind: str = "auto"):
    """The credential the user asked for; ``auto`` is the notebook's order (default chain, then browser)."""
    import azure.identity as identity

    kind = (kind or "auto").lower()
    if kind not in CREDENTIALS:
        raise AzmlError(f"unknown credential '{kind}'; use one of {', '.join(CREDENTIALS)}.")
    if kind == "cli":
        return identity.AzureCliCredential(), "Azure CLI (az login)"
    if kind == "device-code":
        return identity.DeviceCodeCredential(), "device code"
    if kind == "managed-identity":
        return identity.ManagedIdentityCredential(), "managed identity"
    if kind == "browser":
        return identity.InteractiveBrowserCredential(), "interactive browser"
    credential = identity.DefaultAzureCredential()
    if kind == "default":
        return credential, "DefaultAzureCredential"
    # the probe's failures are expected (the fallback follows): keep azure.identity's per-credential
    # warnings out of the notebook
    import logging

    quiet = logging.getLogger("azure.identity")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        credential.get_token(management_scope())
        return credential, "DefaultAzureCredential"
    except Exception:  # the notebook's fallback: nothing in the default chain works here
        return identity.InteractiveBrowserCredential(), "interactive browser (the default chain found no login)"
    finally:
        quiet.setLevel(level)


def workspace_client(credential, options: dict):
    """``MLClient.from_config`` the way the notebook does, with explicit values winning."""
    from azure.ai.ml import MLClient

    sub = options.get("subscription_id")
    rg = options.get("resource_group")
    ws = options.get("workspace_name")
    if sub and rg and ws:
        return MLClient(credential, subscription_id=sub, resource_group_name=rg, workspace_name=ws, show_progress=SDK_BARS)
    config_path = options.get("config_path")
    if config_path and not Path(config_path).expanduser().exists():
        raise AzmlError(f"config file not found: {config_path}; download config.json from the Azure ML studio.")
    try:
        client = MLClient.from_config(credential, path=str(Path(config_path).expanduser()) if config_path else None,
                                      show_progress=SDK_BARS)
    except Exception as err:
        if type(err).__name__ in ("ValidationException", "FileNotFoundError") or "config" in str(err).lower():
            missing = [n for n, v in (("--subscription", sub), ("--resource-group", rg), ("--workspace", ws)) if not v]
            raise NotConnected(
                "no config.json found (searched this folder and its parents, and .azureml/); download it from "
                f"the Azure ML studio, pass --config PATH, or give {' '.join(missing)}."
            ) from None
        raise
    if sub or rg or ws:
        return MLClient(
            credential,
            subscription_id=sub or client.subscription_id,
            resource_group_name=rg or client.resource_group_name,
            workspace_name=ws or client.workspace_name,
            show_progress=SDK_BARS,
        )
    return client


def connect(options: dict) -> Clients:
    """Build the clients and prove the workspace answers (one GET), or raise one line."""
    from azure.ai.ml import MLClient

    credential, label = make_credential(options.get("credential") or "auto")
    client = workspace_client(credential, options)
    registry_name = options.get("registry") or "azureml"
    try:
        registry = MLClient(credential, registry_name=registry_name, show_progress=SDK_BARS)
    except Exception as err:
        raise remote_error(err, f"open the model registry '{registry_name}'") from None
    return Clients(
        credential, label, client, registry, registry_name,
        client.subscription_id, client.resource_group_name, client.workspace_name,
    )
