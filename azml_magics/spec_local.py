"""The ``local:`` section of a fine-tune spec: options that only the local backend reads.

They live in their own section so the ``parameters:`` that go to Azure stay exactly the Azure
pipeline's inputs: a spec with a ``local:`` section runs unchanged on Azure (which never reads it).
Whether an option's extra is installed (bitsandbytes, liger-kernel, DeepSpeed) is checked by the
local backend when it plans the run, not here: the spec is valid on a machine without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec_values import Where, closest, is_int

DEVICES = ("auto", "cuda", "mps", "cpu")
DISTRIBUTED = ("ddp", "fsdp", "deepspeed")
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")
CHECKPOINTING = ("auto", "true", "false")
# the local endpoint's generation engines (a deploy spec's ``engine``; see backends/local/engines.py)
ENGINES = ("auto", "transformers", "batcher", "vllm")


@dataclass
class LocalSpec:
    """Local-only options; None means "decide from the machine" (shown in the plan)."""

    device: str | None = None  # auto | cuda | mps | cpu
    processes: int | None = None  # processes per machine (default: the GPUs used; 1 on CPU/MPS)
    distributed: str | None = None  # ddp | fsdp | deepspeed (default: deepspeed if apply_deepspeed, else ddp)
    qlora: bool | None = None  # 4-bit base weights through bitsandbytes (CUDA)
    liger: bool | None = None  # Liger kernels (CUDA)
    gradient_checkpointing: str | None = None  # auto (when the estimate says memory needs it) | true | false
    attention: str | None = None  # auto (FlashAttention 2 when installed, else SDPA) | sdpa | eager | ...
    probe_steps: int | None = None  # optimizer steps the time estimate measures (0: no probe)
    main_process_ip: str | None = None  # several machines (num_nodes_finetune > 1): rank 0's address
    main_process_port: int | None = None
    machine_rank: int | None = None


LOCAL_KEYS = set(LocalSpec.__dataclass_fields__)


def _choice(raw: dict, key: str, choices: tuple, where: Where) -> str | None:
    if key not in raw:
        return None
    value = str(raw[key]).lower() if isinstance(raw[key], (str, bool)) else raw[key]
    if value not in choices:
        raise where.error(("local", key), f"local.{key} must be one of {', '.join(choices)} (got {raw[key]!r}).")
    return value


def _flag(raw: dict, key: str, where: Where) -> bool | None:
    if key not in raw:
        return None
    if not isinstance(raw[key], bool):
        raise where.error(("local", key), f"local.{key} must be true or false (got {raw[key]!r}).")
    return raw[key]


def _count(raw: dict, key: str, where: Where, minimum: int) -> int | None:
    if key not in raw:
        return None
    if not is_int(raw[key]) or raw[key] < minimum:
        raise where.error(("local", key), f"local.{key} must be a whole number of at least {minimum} (got {raw[key]!r}).")
    return raw[key]


def parse_local(raw, where: Where) -> LocalSpec | None:
    """The ``local:`` mapping, checked; None when the spec has none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise where.error(("local",), "'local' must be a mapping of local-only options (device, processes, qlora, ...).")
    spec = LocalSpec()
    for key in raw:
        if key not in LOCAL_KEYS:
            match = closest(str(key), LOCAL_KEYS)
            hint = f"did you mean '{match}'?" if match else f"valid keys: {', '.join(sorted(LOCAL_KEYS))}."
            where.report(where.error(("local", key), f"unknown key '{key}' in local; {hint}"))
    checks = {
        "device": lambda: _choice(raw, "device", DEVICES, where),
        "distributed": lambda: _choice(raw, "distributed", DISTRIBUTED, where),
        "attention": lambda: _choice(raw, "attention", ATTENTION, where),
        "gradient_checkpointing": lambda: _choice(raw, "gradient_checkpointing", CHECKPOINTING, where),
        "qlora": lambda: _flag(raw, "qlora", where),
        "liger": lambda: _flag(raw, "liger", where),
        "processes": lambda: _count(raw, "processes", where, 1),
        "probe_steps": lambda: _count(raw, "probe_steps", where, 0),
        "main_process_port": lambda: _count(raw, "main_process_port", where, 1),
        "machine_rank": lambda: _count(raw, "machine_rank", where, 0),
    }
    for key, check in checks.items():
        with where.guard():
            setattr(spec, key, check())
    if "main_process_ip" in raw:
        value = raw["main_process_ip"]
        if isinstance(value, str) and value.strip():
            spec.main_process_ip = value.strip()
        else:
            where.report(where.error(("local", "main_process_ip"), "local.main_process_ip must be a host name or address."))
    if spec.qlora and spec.distributed in ("fsdp", "deepspeed"):
        where.report(where.error(("local", "qlora"), f"local.qlora with local.distributed={spec.distributed} is not "
                                 "supported; use ddp (the default) or turn qlora off."))
    return spec

