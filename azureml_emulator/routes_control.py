"""The emulator's own control surface under /_emulator: the request log and faults."""

from __future__ import annotations

from .routing import Req, error_response, ok, route


@route("GET", "/_emulator/requests", "control_requests")
def requests_log(state, req: Req):
    return ok(state.request_log())


@route("GET", "/_emulator/faults", "control_faults_get")
def faults_get(state, req: Req):
    return ok(state.faults.as_dict())


@route("POST", "/_emulator/faults", "control_faults_set")
def faults_set(state, req: Req):
    if not isinstance(req.json, dict):
        return error_response(400, "BadRequest", "Send a JSON object of fault names to values.")
    try:
        state.faults.update(req.json)
    except (ValueError, TypeError) as err:
        return error_response(400, "BadRequest", str(err))
    return ok(state.faults.as_dict())


@route("DELETE", "/_emulator/faults", "control_faults_reset")
def faults_reset(state, req: Req):
    state.faults.reset()
    return ok(state.faults.as_dict())
