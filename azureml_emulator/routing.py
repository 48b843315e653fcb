"""Routing plumbing shared by the route modules: one decorator, one request record, Azure errors.

Every route has a name (``compute_create``, ``job_get``...): the request log records it and HTTP
faults target it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from starlette.responses import JSONResponse, Response

ROUTES: list[tuple[str, str, str, Callable]] = []


def route(method: str, path: str, name: str) -> Callable:
    """Register ``fn(state, req) -> Response`` for METHOD PATH under NAME."""

    def deco(fn: Callable) -> Callable:
        ROUTES.append((method, path, name, fn))
        return fn

    return deco


@dataclass
class Req:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    json: object = None
    extra: dict = field(default_factory=dict)


class ServiceError(Exception):
    """Raised by handlers; becomes the service's error envelope ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def error_response(status: int, code: str, message: str, details: list | None = None,
                   headers: dict | None = None) -> Response:
    body: dict = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status, headers={"x-ms-error-code": code, **(headers or {})})


@dataclass
class Deferred:
    """What a handler returns for slow work (generating a reply): ``run()`` is called after the state
    lock is released, in a worker thread, and returns the response."""

    run: Callable


def ok(body: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)
