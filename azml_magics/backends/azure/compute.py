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
    try:
        sizes = list(client.compute.list_sizes())
    except Exception as err:
        raise remote_error(err, "list the VM sizes of the workspace's region") from None
    for entry in sizes:
        if str(entry.name).lower() == size.lower():
            return int(getattr(entry, "gpus", 0) or 0)
    known = sorted(str(e.name) for e in sizes if getattr(e, "gpus", 0))
    raise SpecError(
        f"VM size {size} is not offered in this workspace's region; GPU sizes here: "
        f"{', '.join(known[:12]) or 'none'}{' ...' if len(known) > 12 else ''}."
    )


def _state(resource) -> str:
    return text(getattr(resource, "provisioning_state", None)) or "Succeeded"


def check(client, spec, model: ModelInfo) -> ComputeInfo:
    """Allow list, region sizes, GPU count, an existing cluster's size. Sends GET requests only."""
    check_size(spec.size, model.finetune_allow_list, "fine-tune compute", model, "set compute.size to")
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
    gpus = gpus_for(client, spec.size)
    if gpus < 1:
        raise SpecError(f"{spec.size} has no GPU; fine-tuning needs a GPU size such as Standard_NC24ads_A100_v4.")
    state = _state(found) if found is not None else "missing"
    return ComputeInfo(spec.name, spec.size, gpus_per_node=gpus, state=state, created=False)


def build(spec):
    """The AmlCompute entity the notebook creates; tier LowPriority only when asked for."""
    from azure.ai.ml.entities import AmlCompute

    kwargs = {}
    if spec.min_instances:
        kwargs["min_instances"] = spec.min_instances
    if spec.idle_time_before_scale_down != 120:
        kwargs["idle_time_before_scale_down"] = spec.idle_time_before_scale_down
    tier = "LowPriority" if spec.tier == "low_priority" else "Dedicated"
    return AmlCompute(name=spec.name, size=spec.size, tier=tier, max_instances=spec.max_instances, **kwargs)


def ensure(client, spec, model: ModelInfo, progress: Callable[[str], None]) -> ComputeInfo:
    """Reuse the cluster if it is there (size checked), otherwise create it and wait."""
    info = check(client, spec, model)
    if info.state != "missing":
        progress(f"Reusing compute '{spec.name}' ({spec.size}, {info.gpus_per_node} GPU(s) per node).")
        return info
    tier = "low priority" if spec.tier == "low_priority" else "dedicated"
    progress(f"Creating compute '{spec.name}': {spec.size}, {tier}, up to {spec.max_instances} node(s) ...")
    try:
        poller = client.compute.begin_create_or_update(build(spec))
        created = poller.result()
    except Exception as err:
        raise remote_error(err, f"create compute '{spec.name}'") from None
    state = _state(created)
    progress(f"Compute '{spec.name}' is {state}.")
    return ComputeInfo(spec.name, spec.size, gpus_per_node=info.gpus_per_node, state=state, created=True)


def delete(client, name: str, progress: Callable[[str], None]) -> None:
    progress(f"Deleting compute '{name}' ...")
    try:
        client.compute.begin_delete(name).result()
    except Exception as err:
        if is_not_found(err) and existing_cluster(client, name) is None:
            return  # already gone
        raise remote_error(err, f"delete compute '{name}'") from None
