"""Our mark on what we create in a workspace, and finding it again.

Every cluster, endpoint, deployment and job we create carries two tags: ``azml.created_by:
azml_magics`` and ``azml.record: <id>``, the id of the home's state record of this workspace
(:func:`azml_magics.state.record_id`, a hash of names, nothing secret). When that record is
damaged, :func:`owned_resources` lists the workspace's endpoints, jobs and clusters and keeps the
ones with our id, so ``%azml_delete --all`` still finds what bills. A marketplace subscription takes
no tags: the FineTuning job whose submission created it names it in ``azml.subscriptions``, and one
that still exists is found again through that job. Resources made before these tags existed, or by
another home, are not found (on purpose: they are not this record's).
"""

from __future__ import annotations

TAG_CREATED_BY = "azml.created_by"
CREATED_BY = "azml_magics"
TAG_RECORD = "azml.record"
TAG_SUBSCRIPTIONS = "azml.subscriptions"  # on a FineTuning job: the marketplace subscriptions its submission created


def owner_tags(record: str) -> dict[str, str]:
    """The tags every resource we create carries."""
    return {TAG_CREATED_BY: CREATED_BY, TAG_RECORD: record}


def is_ours(tags, record: str) -> bool:
    tags = tags or {}
    return tags.get(TAG_CREATED_BY) == CREATED_BY and tags.get(TAG_RECORD) == record


def owned_resources(client, record: str) -> dict[str, dict[str, dict]]:
    """{kind: {name: info}} of the endpoints (online and serverless), jobs, clusters tagged with ``record``,
    and the marketplace subscriptions those jobs name.

    Four list requests and a read per named subscription (the service has no tag filter on these lists, so the tags are compared here).
    An error propagates: the state module reports it in its one line.
    """
    from .finetuning import existing_subscription
    from .jobs import job_state

    endpoints = {}
    for ep in client.online_endpoints.list():
        if is_ours(ep.tags, record):
            traffic = dict(ep.traffic or {})
            endpoints[ep.name] = {"deployment": max(traffic, key=traffic.get) if traffic else None}
    for ep in client.serverless_endpoints.list():
        if is_ours(ep.tags, record):
            endpoints[ep.name] = {"deployment": "serverless"}
    jobs, subscriptions = {}, {}
    for job in client.jobs.list():
        tags = getattr(job, "tags", None) or {}
        if is_ours(tags, record):
            jobs[job.name] = {"state": job_state(job.status), "display_name": getattr(job, "display_name", None),
                              "experiment": getattr(job, "experiment_name", None)}
            for name in filter(None, str(tags.get(TAG_SUBSCRIPTIONS, "")).split(",")):
                found = existing_subscription(client, name)
                if found is not None:
                    subscriptions[name] = {"model": getattr(found, "model_id", None), "job": job.name}
    computes = {}
    for compute in client.compute.list():
        if is_ours(getattr(compute, "tags", None), record):
            computes[compute.name] = {"size": getattr(compute, "size", None)}
    return {"endpoints": endpoints, "jobs": jobs, "computes": computes, "subscriptions": subscriptions}

