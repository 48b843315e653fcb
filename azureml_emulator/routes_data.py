"""Data assets (workspace): versions create/get/list and containers get/list, as the SDK's
``ml_client.data`` calls them. A client that names assets by content hash finds an existing version
with ``data.get(name, version)`` (404 when absent) instead of uploading twice.
"""

from __future__ import annotations

from .resources import check_workspace, now_iso, page, resource, ws_scope
from .routes_workspace import WS, _get_versioned, _store_versioned
from .routing import Req, ServiceError, ok, route

DATA_TYPES = ("uri_file", "uri_folder", "mltable")


def _active(items: list[dict], req: Req) -> list[dict]:
    """``listViewType``: ActiveOnly (the default), ArchivedOnly or All."""
    view = req.query.get("listViewType", "ActiveOnly").lower()
    if view == "all":
        return items
    archived = view == "archivedonly"
    return [i for i in items if bool(i["properties"].get("isArchived")) == archived]


def _versions(state, name: str) -> list[dict]:
    """NAME's versions, newest first."""
    items = list(state.data.get(name, {}).values())
    return sorted(items, key=lambda b: b["systemData"]["createdAt"], reverse=True)


def _container(state, name: str) -> dict:
    versions = _versions(state, name)
    latest = versions[0]
    numeric = [int(v["name"]) for v in versions if v["name"].isdigit()]
    return resource(f"{ws_scope(state)}/data/{name}", "workspaces/data", name, {
        "dataType": latest["properties"]["dataType"], "description": latest["properties"].get("description"),
        "tags": {}, "properties": {}, "isArchived": all(v["properties"].get("isArchived") for v in versions),
        "latestVersion": latest["name"], "nextVersion": str(max(numeric) + 1) if numeric else "1",
    }, systemData=versions[-1]["systemData"])


@route("GET", WS + "/data", "data_list")
def data_list(state, req: Req):
    check_workspace(state, req.params)
    return page(_active([_container(state, n) for n in state.data], req))


@route("GET", WS + "/data/{name}", "data_container_get")
def data_container_get(state, req: Req):
    check_workspace(state, req.params)
    if not state.data.get(req.params["name"]):
        raise ServiceError(404, "UserError", f"Could not find data asset {req.params['name']}.")
    return ok(_container(state, req.params["name"]))


@route("GET", WS + "/data/{name}/versions", "data_versions_list")
def data_versions_list(state, req: Req):
    check_workspace(state, req.params)
    items = _active(_versions(state, req.params["name"]), req)
    if req.query.get("$orderBy", "").lower() == "createdtime asc":
        items.reverse()
    if "$top" in req.query:
        items = items[: int(req.query["$top"])]
    return page(items)


@route("GET", WS + "/data/{name}/versions/{version}", "data_get")
def data_get(state, req: Req):
    return _get_versioned(state, req, state.data, "data asset")


@route("PUT", WS + "/data/{name}/versions/{version}", "data_create")
def data_create(state, req: Req):
    check_workspace(state, req.params)
    props = dict((req.json or {}).get("properties") or {})
    if props.get("dataType") not in DATA_TYPES:
        raise ServiceError(400, "UserError", f"Unsupported dataType {props.get('dataType')!r}; "
                           f"use one of {list(DATA_TYPES)}.")
    if not props.get("dataUri"):
        raise ServiceError(400, "UserError", "dataUri is required.")
    name, version = req.params["name"], req.params["version"]
    existing = state.data.get(name, {}).get(version)
    if existing is not None:
        old = existing["properties"]
        if (old["dataUri"], old["dataType"]) != (props["dataUri"], props["dataType"]):
            raise ServiceError(409, "UserError", f"Data asset {name}:{version} already exists with a different "
                               "dataUri or dataType; a version's data is immutable, create a new version.")
        old.update({k: props[k] for k in ("description", "tags", "isArchived") if k in props})
        existing["systemData"]["lastModifiedAt"] = now_iso()
        return ok(existing)
    return _store_versioned(state, req, state.data, "data", props)
