"""The GPU cluster: every check before anything is created, then create or reuse.

The original notebook created the cluster first and found out later that its VM size was not in
the model's allow list; here the size is checked against the allow list, the region's size list
and an existing cluster of the same name, and only then is a cluster created.
"""

from __future__ import annotations

from typing import Callable

from ...errors import SpecError
from ..base import ComputeInfo, ModelInfo
from .modelcard import check_size
from .remote import is_not_found, remote_error, text


def existing_cluster(client, name: str):
    """The cluster named ``name``, or None."""
    try:
        return client.compute.get(name)
    except Exception as err:
        if is_not_found(err):
            return None
        raise remote_error(err, f"read compute '{name}'") from None


def gpus_for(client, size: str) -> int:
    """GPUs per node of ``size`` from the workspace region's size list (0 for a CPU size)."""
    return int(getattr(size_entry(client, size), "gpus", 0) or 0)


# Sizes Microsoft has retired (a retired size is no longer offered; its VMs are deallocated): NCv3 (V100)
# on 2025-09-30, per MicrosoftDocs/azure-docs articles/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement.md,
# which recommends the NC A100 v4 series instead.
RETIRED_SIZES = {
    "standard_nc6s_v3": ("NCv3", "2025-09-30", "Standard_NC24ads_A100_v4"),
    "standard_nc12s_v3": ("NCv3", "2025-09-30", "Standard_NC48ads_A100_v4"),
    "standard_nc24s_v3": ("NCv3", "2025-09-30", "Standard_NC96ads_A100_v4"),
}


def size_entry(client, size: str):
    """``size`` as the workspace region's size list has it (family, vCPUs, GPUs)."""
    try:
        sizes = list(client.compute.list_sizes())
    except Exception as err:
        raise remote_error(err, "list the VM sizes of the workspace's region") from None
    for entry in sizes:
        if str(entry.name).lower() == size.lower():
            return entry
    if size.lower() in RETIRED_SIZES:
        series, date, instead = RETIRED_SIZES[size.lower()]
        raise SpecError(f"{size} is retired: Azure retired the {series} sizes on {date} and no longer offers them; "
                        f"use an NC A100 v4 size such as {instead}.")
    known = sorted(str(e.name) for e in sizes if getattr(e, "gpus", 0))
    raise SpecError(
        f"VM size {size} is not offered in this workspace's region; GPU sizes here: "
        f"{', '.join(known[:12]) or 'none'}{' ...' if len(known) > 12 else ''}."
    )


def check_quota(client, entry) -> str | None:
    """Refuse a size one node of which does not fit in its VM family's free vCPU quota
    (``compute.list_usage``), before a cluster is created; a note when the quota cannot be read."""
    family, cpus = str(getattr(entry, "family", "") or ""), int(_sdk_field(entry, "v_cp_us", "vCPUs") or 0)
    try:
        usage = next((u for u in client.compute.list_usage() if _usage_name(u).lower() == family.lower()), None)
    except Exception as err:
        return f"the {family} vCPU quota could not be read ({remote_error(err, 'list usage')}); not checked."
    limit = getattr(usage, "limit", None)
    if usage is None or limit is None:
        return f"the region publishes no {family} vCPU quota; not checked."
    used = _sdk_field(usage, "current_value", "currentValue") or 0
    free = int(limit) - int(used)
    if free < cpus:
        raise SpecError(
            f"{entry.name} needs {cpus} vCPUs per node but the subscription's {family} quota has {free} free "
            f"(limit {limit}); request a quota increase (Azure portal > Quotas) or pick a size of another family."
        )
    return None


def _sdk_field(entity, attr: str, rest_name: str):
    """The SDK's VmSize and Usage entities copy the REST dict over their attributes, so a camelCase
    field sits under its REST name and the snake_case attribute stays None."""
    value = getattr(entity, attr, None)
    return value if value is not None else getattr(entity, rest_name, None)


def _usage_name(usage) -> str:
    name = getattr(usage, "name", None)
    return str((name.get("value") if isinstance(name, dict) else getattr(name, "value", "")) or "")


def _state(resource) -> str:
    return text(getattr(resource, "provisioning_state", None)) or "Succeeded"


def check(client, spec, model: ModelInfo) -> ComputeInfo:
    """Allow list, region sizes, GPU count, an existing cluster's size. Sends GET requests only."""
    unchecked = check_size(spec.size, model.finetune_allow_list, "fine-tune compute", model, "set compute.size to")
    found = existing_cluster(client, spec.name)
    if found is not None:
        size = str(getattr(found, "size", "") or "")
        if size.lower() != spec.size.lower():
            raise SpecError(
                f"compute '{spec.name}' already exists with size {size}, not {spec.size}; set compute.size to "
                f"{size}, or pick another compute.name."
            )
        if str(getattr(found, "type", "amlcompute")).lower() not in ("amlcompute", ""):
            raise SpecError(f"compute '{spec.name}' is a {found.type}, not a cluster; pick another compute.name.")
    entry = size_entry(client, spec.size)
    gpus = int(getattr(entry, "gpus", 0) or 0)
    if gpus < 1:
        raise SpecError(f"{spec.size} has no GPU; fine-tuning needs a GPU size such as Standard_NC24ads_A100_v4.")
    notes = [unchecked] if unchecked else []
    if found is None:  # an existing cluster already holds its quota
        quota_note = check_quota(client, entry)
        notes += [quota_note] if quota_note else []
    state = _state(found) if found is not None else "missing"
    return ComputeInfo(spec.name, spec.size, gpus_per_node=gpus, state=state, created=False, notes=notes)


def build(spec, tags: dict[str, str] | None = None):
    """The AmlCompute entity the notebook creates (plus our ownership tags); tier LowPriority only when asked for."""
    from azure.ai.ml.entities import AmlCompute

    kwargs = {}
    if spec.min_instances:
        kwargs["min_instances"] = spec.min_instances
    if spec.idle_time_before_scale_down != 120:
        kwargs["idle_time_before_scale_down"] = spec.idle_time_before_scale_down
    tier = "LowPriority" if spec.tier == "low_priority" else "Dedicated"
    if tags:
        kwargs["tags"] = dict(tags)
    return AmlCompute(name=spec.name, size=spec.size, tier=tier, max_instances=spec.max_instances, **kwargs)


def ensure(client, spec, model: ModelInfo, progress: Callable[[str], None],
           tags: dict[str, str] | None = None) -> ComputeInfo:
    """Reuse the cluster if it is there (size checked), otherwise create it and wait."""
    info = check(client, spec, model)
    for note in info.notes:
        progress(f"Warning: {note}")
    if info.state != "missing":
        progress(f"Reusing compute '{spec.name}' ({spec.size}, {info.gpus_per_node} GPU(s) per node).")
        return info
    tier = "low priority" if spec.tier == "low_priority" else "dedicated"
    progress(f"Creating compute '{spec.name}': {spec.size}, {tier}, up to {spec.max_instances} node(s) ...")
    try:
        poller = client.compute.begin_create_or_update(build(spec, tags))
        created = poller.result()
    except Exception as err:
        raise remote_error(err, f"create compute '{spec.name}'") from None
    state = _state(created)
    progress(f"Compute '{spec.name}' is {state}.")
    return ComputeInfo(spec.name, spec.size, gpus_per_node=info.gpus_per_node, state=state, created=True,
                       notes=info.notes)


def delete(client, name: str, progress: Callable[[str], None]) -> None:
    progress(f"Deleting compute '{name}' ...")
    try:
        client.compute.begin_delete(name).result()
    except Exception as err:
        if is_not_found(err) and existing_cluster(client, name) is None:
            return  # already gone
        raise remote_error(err, f"delete compute '{name}'") from None
