"""Marketplace subscriptions, serverless endpoints (create / get / list / keys / delete, long-running)
and a serverless endpoint's OpenAI-style chat route.

Ground truth:
- Paths, api-version (2024-01-01-preview as the SDK sends it) and bodies: azure-ai-ml 1.35.2
  ``_restclient/arm_ml_service/operations/_operations.py`` (``.../workspaces/{ws}/serverlessEndpoints/{name}``,
  ``/listKeys``; ``.../marketplaceSubscriptions/{name}``), its models ``ServerlessEndpoint`` /
  ``ServerlessEndpointProperties`` (``modelSettings.modelId``, ``authMode``, ``inferenceEndpoint {uri,
  headers}``, ``provisioningState``, ``endpointState``, ``marketplaceSubscriptionId``),
  ``MarketplaceSubscriptionProperties`` (``modelId``, ``marketplacePlan {publisherId, offerId, planId}``,
  ``marketplaceSubscriptionStatus``, ``provisioningState``), ``EndpointAuthKeys``. The SDK sends
  ``{"properties": {"modelSettings": {"modelId"}}, "sku": {"name": "Consumption"}, "location"}``
  (``entities/_autogen_entities/models/_patch.py``) and refuses a registry model id with a version itself.
- Response envelopes and the delete's 202 + ``location`` header: Azure/azure-rest-api-specs
  ``stable/2024-04-01/examples/Workspace/ServerlessEndpoint/{createOrUpdate,get,delete,listKeys}.json``.
- The chat route: Azure/azureml-examples' model-as-a-service notebook posts to
  ``f"{endpoint.scoring_uri}/v1/chat/completions"`` with ``Authorization: <key>`` (no scheme).
- "Skip this step for 1P (Microsoft) models ... Phi family" (the same notebooks): a subscription for a
  model of the Microsoft registry ``azureml`` is refused.

Not verified (no recording found): the marketplace plan's ids (the emulator derives them from the
registry and model names), the refusal text and status for a subscription that is not needed (400
here), whether the service refuses a serverless endpoint for a marketplace model without a subscription
(it does here, 400), the inference URI's host form (Azure: ``https://<name>.<region>.models.ai.azure.com``;
here a path under the emulator), ``endpointState`` values over time (``Online`` once created).
"""

from __future__ import annotations

import re
import secrets

from .routing import Req, ServiceError, error_response, ok, route
from .resources import check_workspace, lro_accepted, page, resource, system_data, ws_scope
from .routes_workspace import LOCATION, WORKSPACE_ID, WS

SUBS = WS + "/marketplaceSubscriptions"
SERVERLESS = WS + "/serverlessEndpoints"
CHAT_ROOT = "/_serverless/{endpoint}"
REGISTRY_MODEL = re.compile(r"^azureml://registries/([^/]+)/models/([^/]+)$")
WORKSPACE_MODEL = re.compile(r"^azureml://locations/([^/]+)/workspaces/([^/]+)/models/([^/]+)/versions/([^/]+)$")


# -- marketplace subscriptions ---------------------------------------------------------------------
def _subscription_body(state, name: str) -> dict:
    rec = state.marketplace_subscriptions[name]
    return resource(f"{ws_scope(state)}/marketplaceSubscriptions/{name}", "workspaces/marketplaceSubscriptions", name,
                    dict(rec), systemData=system_data())


@route("PUT", SUBS + "/{name}", "marketplace_subscription_create")
def subscription_create(state, req: Req):
    check_workspace(state, req.params)
    model_id = (((req.json or {}).get("properties") or {}).get("modelId")) or ""
    m = REGISTRY_MODEL.match(model_id)
    if not m:
        raise ServiceError(400, "UserError", f"modelId {model_id!r} must be azureml://registries/<registry>/models/<name>.")
    registry, model = m.groups()
    if registry == state.emulator.registry:
        raise ServiceError(400, "UserError", f"Model {model} is offered by Microsoft in registry {registry} and "
                           "needs no marketplace subscription.")
    name = req.params["name"]
    state.marketplace_subscriptions[name] = {
        "modelId": model_id, "marketplaceSubscriptionStatus": "Subscribed", "provisioningState": "Succeeded",
        "marketplacePlan": {"publisherId": registry.removeprefix("azureml-"), "offerId": model.lower(),
                            "planId": model.lower()},
    }
    op = state.new_operation()
    return lro_accepted(state, _subscription_body(state, name), op, api_version=req.query.get("api-version"))


@route("GET", SUBS + "/{name}", "marketplace_subscription_get")
def subscription_get(state, req: Req):
    check_workspace(state, req.params)
    if req.params["name"] not in state.marketplace_subscriptions:
        raise ServiceError(404, "UserError", f"Marketplace subscription {req.params['name']} not found.")
    return ok(_subscription_body(state, req.params["name"]))


@route("GET", SUBS, "marketplace_subscription_list")
def subscription_list(state, req: Req):
    check_workspace(state, req.params)
    return page([_subscription_body(state, n) for n in state.marketplace_subscriptions])


@route("DELETE", SUBS + "/{name}", "marketplace_subscription_delete")
def subscription_delete(state, req: Req):
    check_workspace(state, req.params)
    name = req.params["name"]
    if name not in state.marketplace_subscriptions:
        return ok(None, status=204)
    op = state.new_operation(lambda: state.marketplace_subscriptions.pop(name, None))
    return lro_accepted(state, None, op, status=202, location=True, api_version=req.query.get("api-version"))


# -- serverless endpoints ----------------------------------------------------------------------------
def _endpoint_body(state, name: str) -> dict:
    rec = state.serverless_endpoints[name]
    succeeded = rec["provisioningState"] == "Succeeded"
    props = {
        "authMode": "Key", "modelSettings": {"modelId": rec["modelId"]},
        "provisioningState": rec["provisioningState"],
        "endpointState": "Online" if succeeded else rec["provisioningState"],
        "inferenceEndpoint": {"uri": f"{state.emulator.base_url}/_serverless/{name}", "headers": {}},
    }  # no contentSafety: the 2024-01-01-preview schema the SDK's api-version names has none
    if rec.get("marketplaceSubscriptionId"):
        props["marketplaceSubscriptionId"] = rec["marketplaceSubscriptionId"]
    return resource(f"{ws_scope(state)}/serverlessEndpoints/{name}", "workspaces/serverlessEndpoints", name, props,
                    location=LOCATION, kind="", tags=rec.get("tags") or {}, sku={"name": "Consumption"},
                    systemData=rec["systemData"])


def _check_model(state, model_id: str) -> str | None:
    """The marketplace subscription id the endpoint needs, or None; raise when the model is unusable."""
    from . import catalog

    w = WORKSPACE_MODEL.match(model_id)
    if w:
        _, workspace_id, name, version = w.groups()
        if workspace_id != WORKSPACE_ID:
            raise ServiceError(400, "UserError", f"Workspace {workspace_id} in modelId is not this workspace.")
        from .finetuning_jobs import register_outputs

        register_outputs(state)
        if version not in state.models.get(name, {}):
            raise ServiceError(404, "UserError", f"Model {name}:{version} not found.")
        return None
    r = REGISTRY_MODEL.match(model_id)
    if not r:
        raise ServiceError(400, "UserError", f"modelId {model_id!r} is neither a registry model nor a workspace "
                           "model version.")
    registry, name = r.groups()
    if registry == state.emulator.registry:
        versions = catalog.models().get(name) or []
        if not versions or "ServerlessMaaS" not in (versions[-1].system_metadata.get("deploymentOptions") or []):
            raise ServiceError(400, "UserError", f"Model {name} is not offered as a serverless API.")
        return None
    for sub_name, sub in state.marketplace_subscriptions.items():
        if sub["modelId"] == model_id:
            return f"{ws_scope(state)}/marketplaceSubscriptions/{sub_name}"
    raise ServiceError(400, "UserError", f"Model {model_id} needs a marketplace subscription in this workspace.")


@route("PUT", SERVERLESS + "/{name}", "serverless_endpoint_create")
def serverless_create(state, req: Req):
    check_workspace(state, req.params)
    name = req.params["name"]
    body = req.json or {}
    model_id = (((body.get("properties") or {}).get("modelSettings") or {}).get("modelId")) or ""
    if (body.get("sku") or {}).get("name") != "Consumption":
        raise ServiceError(400, "UserError", "A serverless endpoint's sku must be Consumption.")
    existing = state.serverless_endpoints.get(name)
    if existing is not None and existing["modelId"] != model_id:
        raise ServiceError(400, "UserError", f"Serverless endpoint {name} serves {existing['modelId']}; its model "
                           "cannot be changed.")
    subscription = _check_model(state, model_id)
    rec = existing or {"provisioningState": "Creating", "modelId": model_id, "systemData": system_data(),
                       "keys": (secrets.token_urlsafe(32), secrets.token_urlsafe(32))}
    rec["tags"] = body.get("tags")
    rec["marketplaceSubscriptionId"] = subscription
    state.serverless_endpoints[name] = rec

    def done():
        rec["provisioningState"] = "Succeeded"

    op = state.new_operation(done)
    return lro_accepted(state, _endpoint_body(state, name), op, status=200 if existing else 201,
                        api_version=req.query.get("api-version"))


def _get(state, name: str) -> dict:
    rec = state.serverless_endpoints.get(name)
    if rec is None:
        raise ServiceError(404, "UserError", f"Could not find serverless endpoint '{name}' in workspace "
                           f"{state.emulator.workspace}.")
    return rec


@route("GET", SERVERLESS + "/{name}", "serverless_endpoint_get")
def serverless_get(state, req: Req):
    check_workspace(state, req.params)
    _get(state, req.params["name"])
    return ok(_endpoint_body(state, req.params["name"]))


@route("GET", SERVERLESS, "serverless_endpoint_list")
def serverless_list(state, req: Req):
    check_workspace(state, req.params)
    return page([_endpoint_body(state, n) for n in state.serverless_endpoints])


@route("POST", SERVERLESS + "/{name}/listKeys", "serverless_endpoint_keys")
def serverless_keys(state, req: Req):
    check_workspace(state, req.params)
    primary, secondary = _get(state, req.params["name"])["keys"]
    return ok({"primaryKey": primary, "secondaryKey": secondary})


@route("DELETE", SERVERLESS + "/{name}", "serverless_endpoint_delete")
def serverless_delete(state, req: Req):
    check_workspace(state, req.params)
    name = req.params["name"]
    rec = _get(state, name)
    rec["provisioningState"] = "Deleting"
    op = state.new_operation(lambda: state.serverless_endpoints.pop(name, None))
    return lro_accepted(state, None, op, status=202, location=True, api_version=req.query.get("api-version"))


# -- the OpenAI-style chat route -----------------------------------------------------------------------
@route("POST", CHAT_ROOT + "/v1/chat/completions", "serverless_chat_completions")
def serverless_chat(state, req: Req):
    from azml_magics import scoring

    from .routes_scoring import _bad_request, _sse, reply_for

    name = req.params["endpoint"]
    rec = state.serverless_endpoints.get(name)
    if rec is None or rec["provisioningState"] != "Succeeded":
        return error_response(404, "EndpointNotFound", f"Serverless endpoint {name} not found.")
    auth = req.headers.get("authorization", "")
    given = auth.partition(" ")[2] if auth.lower().startswith("bearer ") else auth or req.headers.get("api-key", "")
    if given not in rec["keys"]:
        return error_response(401, "Unauthorized", "Key or token is invalid.")
    try:
        parsed = scoring.parse_chat_request(req.json)
    except scoring.BadRequest as err:
        return _bad_request(err)
    reply = reply_for(parsed.conversations[0], name, parsed.params.max_new_tokens)
    if not parsed.stream:
        return ok(scoring.chat_response(reply, model=name))
    from starlette.responses import StreamingResponse

    return StreamingResponse(_sse(reply, name, parsed.include_usage), media_type="text/event-stream")
