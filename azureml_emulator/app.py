"""The Starlette app: every registered route wrapped with the request log and HTTP faults."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from . import (  # noqa: F401
    routes_control, routes_data, routes_endpoints, routes_jobs, routes_meta, routes_mlflow, routes_mlflow_write,
    routes_registry, routes_scoring, routes_serverless, routes_workspace,
)
from .routing import ROUTES, Deferred, Req, ServiceError, error_response


def _wrap(state, name: str, fn):
    async def endpoint(request: Request):
        body = await request.body()
        try:
            parsed = json.loads(body) if body and "json" in request.headers.get("content-type", "json") else None
        except ValueError:
            parsed = None
        req = Req(request.method, request.url.path, dict(request.path_params), dict(request.query_params),
                  {k.lower(): v for k, v in request.headers.items()}, body, parsed)
        state.log_request(name, req)
        fault = state.faults.take_http_fault(name, request.method)
        if fault is not None:
            return fault.response()
        if name not in state.OPEN_ROUTES and not state.authorized(req):
            return error_response(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' "
                                  "header is missing or the bearer token is not one this emulator issued.")
        try:
            with state.lock:
                response = fn(state, req)
            if isinstance(response, Deferred):
                response = await run_in_threadpool(response.run)
        except ServiceError as err:
            response = error_response(err.status, err.code, err.message, err.details)
        state.log_response(name, req, response)
        return response

    return endpoint


def _not_found(state):
    async def endpoint(request: Request):
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = Req(request.method, request.url.path, {}, dict(request.query_params), {}, body, parsed)
        state.log_request("unrouted", req)
        return error_response(404, "NoRoute", f"The emulator has no route for {request.method} {request.url.path}.")

    return endpoint


def build_app(state):
    """The Starlette app behind the storage gate (which sees only ``*.blob.localhost`` requests)."""
    from .storage_gate import StorageGate

    return StorageGate(_routes_app(state), state)


def _routes_app(state) -> Starlette:
    routes = [Route(path, _wrap(state, name, fn), methods=[method], name=f"{name}:{method}")
              for method, path, name, fn in ROUTES]
    routes.append(Route("/{rest:path}", _not_found(state), methods=["GET", "PUT", "POST", "PATCH", "DELETE"]))
    return Starlette(routes=routes)
