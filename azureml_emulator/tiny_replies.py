"""Real replies at the scoring URI, from the local backend's tiny model (opt-in: fault ``real_replies``).

Used when the deployment serves a workspace model registered from a job's output whose training file
really is in blob storage (uploaded to Azurite); anything else keeps the deterministic reply. The model
(torch, transformers) loads on first use, in the worker thread that generates, never at start.

Optional: this module is the emulator's only use of azml_magics beyond the scoring contract (the local
backend's generator and tiny model, ``azml_magics[local]``). routes_scoring imports it only while the
fault is on, so the emulator runs without torch; with the fault on and no torch, scoring answers 501.
"""

from __future__ import annotations

import threading

from .routing import ServiceError

_engine = None
_engine_lock = threading.Lock()


def training_blob(state, endpoint: str, deployment: str) -> str | None:
    """The blob path of the training file behind ENDPOINT/DEPLOYMENT's model, if there is one."""
    from .resources import ws_scope

    with state.lock:
        model_id = state.deployments[endpoint][deployment]["properties"].get("model") or ""
        prefix = ws_scope(state) + "/models/"
        if not model_id.startswith(prefix):
            return None
        name, _, version = model_id[len(prefix):].partition("/versions/")
        model = state.models.get(name, {}).get(version)
        uri = (model or {}).get("properties", {}).get("modelUri") or ""
        if not uri.startswith("azureml://jobs/"):
            return None
        job = state.jobs.get(uri[len("azureml://jobs/"):].split("/")[0])
        if job is None:
            return None
        for step in (job.body["properties"].get("jobs") or {}).values():
            train = ((step.get("inputs") or {}).get("train_file_path") or {}).get("uri") or ""
            if train.startswith("azureml://datastores/workspaceblobstore/paths/"):
                return train.split("/paths/", 1)[1]
    return None


def blob_exists(emulator, path: str) -> bool:
    from azure.storage.blob import BlobClient

    from .routes_workspace import BLOB_CONTAINER

    if not emulator.blob_enabled:
        return False
    blob = BlobClient(f"https://127.0.0.1:{emulator.azurite_port}/{emulator.storage_account}", BLOB_CONTAINER, path,
                      credential={"account_name": emulator.storage_account,
                                  "account_key": emulator.storage_account_key},
                      connection_verify=str(emulator.tls.ca_bundle))
    with blob:
        return blob.exists()


def engine():
    """The tiny model's generation engine (built and loaded once per process)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                from azml_magics.backends.local.generator import Engine
                from azml_magics.backends.local.tiny_model import ensure_tiny_model
            except ImportError as err:
                raise ServiceError(501, "EmulatorNotInstalled",
                                   f"The fault real_replies needs azml_magics[local] (torch, transformers): {err}") from err
            _engine = Engine(str(ensure_tiny_model()), max_batch=4)
        return _engine


def generate(conversation: list[dict], params):
    """One real reply (``azml_magics.scoring.Reply``); raises ``scoring.BadRequest`` when the model's
    template or context refuses the conversation."""
    from azml_magics.backends.local.generator import Job
    from azml_magics.scoring import Reply

    model = engine()
    prompt = model.encode(conversation, params)
    done = model.submit(Job(prompt, params)).result(timeout=120)
    return Reply(model.decode(done.token_ids).strip(), done.finish_reason, done.prompt_tokens,
                 done.completion_tokens)
