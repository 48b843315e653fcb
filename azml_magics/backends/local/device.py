"""Where and how a local fine-tune runs: the device, the precision, the processes, the launcher.

``detect()`` reads the machine (CUDA, Apple MPS, else CPU); ``plan_launch`` turns the effective
pipeline parameters and the spec's ``local:`` section into a :class:`LaunchPlan`, refusing in one
line what cannot run here (a missing extra, QLoRA without CUDA). The rest are pure functions of a
LaunchPlan: the SFTConfig and ``from_pretrained`` arguments, and the ``accelerate launch`` command
when more than one process (or FSDP/DeepSpeed) is asked for. Several processes are never our own
engine: ``accelerate launch`` starts them through torch's elastic launcher (DDP; FSDP or DeepSpeed
through the Trainer's own integrations).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from dataclasses import asdict, dataclass, field

from ...errors import AzmlError

# What each local option needs, and the pip extra of azml_magics that installs it.
EXTRAS = {
    "qlora": ("bitsandbytes", "qlora"),
    "liger": ("liger_kernel", "liger"),
    "deepspeed": ("deepspeed", "deepspeed"),
}


@dataclass
class Device:
    """The accelerator this machine offers (what ``detect`` found)."""

    kind: str  # cuda | mps | cpu
    count: int = 1  # GPUs (1 for mps and cpu)
    name: str = "CPU"
    memory: int = 0  # bytes per device (CPU: the memory available now)
    bf16: bool = False  # CUDA: the GPU computes bf16 natively (Ampere or newer)
    flash_attention: bool = False  # flash_attn is installed and the GPU can run it
    cores: int = 1

    def describe(self) -> str:
        gib = self.memory / 2**30
        if self.kind == "cpu":
            return f"this machine's CPU ({self.cores} cores, {gib:.1f} GiB available)"
        return f"{self.count}x {self.name} ({gib:.1f} GiB each)"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def detect() -> Device:
    """Read the machine: CUDA GPUs first, then Apple MPS, else the CPU."""
    import psutil
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        major = props.major
        return Device("cuda", torch.cuda.device_count(), props.name, props.total_memory,
                      bf16=torch.cuda.is_bf16_supported(), flash_attention=major >= 8 and installed("flash_attn"),
                      cores=cores)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        memory = int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else 0
        return Device("mps", 1, "Apple MPS", memory or psutil.virtual_memory().total, cores=cores)
    return Device("cpu", 1, "CPU", psutil.virtual_memory().available, cores=cores)


@dataclass
class LaunchPlan:
    """How the trainer runs: written into job.json by submit, read by the trainer."""

    device: str = "cpu"  # cuda | mps | cpu
    precision: str = "fp32"  # bf16 | fp16 | fp32
    processes: int = 1  # per machine
    nodes: int = 1
    distributed: str = "none"  # none | ddp | fsdp | deepspeed
    deepspeed_stage: int = 2
    attention: str = "sdpa"
    qlora: bool = False
    liger: bool = False
    gradient_checkpointing: str = "auto"  # auto | true | false; auto is settled by the estimate
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.processes * self.nodes

    @property
    def launcher(self) -> bool:
        """True when the job starts through ``accelerate launch``."""
        return self.world_size > 1 or self.distributed in ("fsdp", "deepspeed")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "LaunchPlan":
        return cls(**(data or {}))


def _true(values: dict, key: str) -> bool:
    return str(values.get(key, "false")).lower() == "true"


def _need(option: str, why: str) -> None:
    module, extra = EXTRAS[option]
    if not installed(module):
        raise AzmlError(f"{why} needs {module}, which is not installed; pip install 'azml_magics[{extra}]' "
                        f"(or turn it off).")


def plan_launch(values: dict, local=None, device: Device | None = None, precision_from_user: bool = False) -> LaunchPlan:
    """The LaunchPlan for these effective parameters, ``local:`` options (a LocalSpec) and device.

    ``precision_from_user``: the user's spec set ``precision`` (else it is the component's default
    "32", and a GPU trains in bf16/fp16 mixed precision, as fine-tuning on a GPU normally does).
    """
    from ...spec_local import LocalSpec

    local = local or LocalSpec()
    device = device or detect()
    kind = device.kind if (local.device or "auto") == "auto" else local.device
    if kind != device.kind and kind != "cpu":
        raise AzmlError(f"local.device={kind} asked, but this machine has {device.describe()}; "
                        "use device: auto or cpu.")
    plan = LaunchPlan(device=kind, gradient_checkpointing=local.gradient_checkpointing or "auto")
    notes = plan.notes
    # precision: "16" is mixed precision on a GPU; "32" kept only when the user asked for it.
    asked = str(values.get("precision", "32"))
    if kind == "cuda" and (asked == "16" or not precision_from_user):
        plan.precision = "bf16" if device.bf16 else "fp16"
    elif asked == "16":
        notes.append(f"precision=16 asked, but {kind.upper()} trains in float32")
    # processes: GPUs per machine, capped at what this machine has.
    gpus = int(values.get("number_of_gpu_to_use_finetuning", 1) or 1)
    if kind == "cuda":
        plan.processes = local.processes or min(gpus, device.count)
        if plan.processes > device.count:
            raise AzmlError(f"local.processes={plan.processes} asked, but this machine has {device.count} GPU(s).")
        if gpus > device.count and not local.processes:
            notes.append(f"number_of_gpu_to_use_finetuning={gpus} asked, this machine has {device.count}: "
                         f"training on {plan.processes} (the global batch is smaller)")
    else:
        plan.processes = local.processes or 1
    nodes = int(values.get("num_nodes_finetune", 1) or 1)
    if nodes > 1 and local.main_process_ip:
        plan.nodes, plan.main_process_ip = nodes, local.main_process_ip
        plan.machine_rank, plan.main_process_port = local.machine_rank or 0, local.main_process_port or 29500
    elif nodes > 1:
        notes.append(f"num_nodes_finetune={nodes}: training on this machine only "
                     "(give local.main_process_ip and local.machine_rank to train on several)")
    # the distributed engine
    if local.distributed in ("fsdp", "deepspeed") or _true(values, "apply_deepspeed"):
        engine = local.distributed or "deepspeed"
        if kind != "cuda":
            if local.distributed:
                raise AzmlError(f"local.distributed={engine} shards a model across GPUs; this machine trains on "
                                f"{kind.upper()}: use ddp or leave it out.")
            notes.append("apply_deepspeed: DeepSpeed shards across GPUs; not used on the CPU")
            engine = "ddp"
        elif engine == "deepspeed":
            _need("deepspeed", "apply_deepspeed=true (DeepSpeed ZeRO)")
            plan.deepspeed_stage = int(values.get("deepspeed_stage", 2) or 2)
        plan.distributed = engine
    if plan.distributed in ("none", "ddp"):
        plan.distributed = "ddp" if plan.world_size > 1 else "none"
    # attention, QLoRA, Liger
    if local.attention and local.attention != "auto":
        if local.attention == "flash_attention_2" and not device.flash_attention:
            raise AzmlError("local.attention=flash_attention_2 needs flash-attn on an Ampere or newer GPU; "
                            "pip install flash-attn, or use attention: auto.")
        plan.attention = local.attention
    else:
        plan.attention = "flash_attention_2" if kind == "cuda" and device.flash_attention else "sdpa"
    if local.qlora:
        if kind != "cuda":
            raise AzmlError("local.qlora (4-bit base weights) needs a CUDA GPU; this machine trains on "
                            f"{kind.upper()}: turn qlora off.")
        if not _true(values, "apply_lora"):
            raise AzmlError("local.qlora trains LoRA adapters over 4-bit weights; set apply_lora: true.")
        _need("qlora", "local.qlora")
        plan.qlora = True
    if local.liger:
        if kind != "cuda":
            raise AzmlError(f"local.liger (Triton kernels) needs a CUDA GPU; this machine trains on {kind.upper()}.")
        _need("liger", "local.liger")
        plan.liger = True
    return plan


# ----------------------------------------------------------------------------- what the trainer passes on
def dtype_name(plan: LaunchPlan) -> str:
    return {"bf16": "bfloat16", "fp16": "float16"}.get(plan.precision, "float32")


def model_kwargs(plan: LaunchPlan, lora: bool, local_rank: int = 0) -> dict:
    """``from_pretrained`` keyword arguments (besides the model's path).

    LoRA keeps the frozen base in the half precision it computes in; a full fine-tune keeps fp32
    master weights and computes under autocast. QLoRA quantizes the base to 4-bit NF4.
    """
    out: dict = {"attn_implementation": plan.attention}
    half = plan.precision in ("bf16", "fp16")
    out["dtype"] = dtype_name(plan) if (half and lora) else "float32"
    if plan.qlora:
        out["quantization_config"] = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=dtype_name(plan), bnb_4bit_use_double_quant=True)
        out["device_map"] = {"": local_rank}
    return out


def deepspeed_config(stage: int) -> dict:
    """A ZeRO config for the Trainer's DeepSpeed integration ("auto" values are filled from SFTConfig)."""
    zero: dict = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto", "gradient_clipping": "auto",
    }


def sft_kwargs(plan: LaunchPlan, checkpointing: bool) -> dict:
    """The SFTConfig arguments that depend on the device (they replace params.sft_kwargs' CPU ones)."""
    out = dict(
        use_cpu=plan.device == "cpu",
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        activation_checkpointing=checkpointing,
        dataloader_pin_memory=plan.device == "cuda",
        use_liger_kernel=plan.liger,
    )
    if plan.world_size > 1:
        out["ddp_find_unused_parameters"] = False
        out["ddp_backend"] = "nccl" if plan.device == "cuda" else "gloo"
    if plan.distributed == "deepspeed":
        out["deepspeed"] = deepspeed_config(plan.deepspeed_stage)
    elif plan.distributed == "fsdp":
        out["fsdp"] = "full_shard auto_wrap"
        out["fsdp_config"] = {"use_orig_params": True, "activation_checkpointing": checkpointing}
        out["activation_checkpointing"] = False  # FSDP does it per wrapped layer
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_args(plan: LaunchPlan, port: int | None = None) -> list[str]:
    """``accelerate launch`` options for ``plan`` (the trainer module and its folder follow them).

    ``--multi_gpu`` is accelerate's name for "torch elastic launcher, several processes"; on a
    machine without CUDA the processes find no GPU and accelerate runs them as MULTI_CPU over gloo.
    FSDP and DeepSpeed are configured by the Trainer from SFTConfig (``fsdp``, ``deepspeed``), so
    the launcher only starts the processes.
    """
    port = plan.main_process_port or port or free_port()
    args = [sys.executable, "-m", "accelerate.commands.launch",
            "--num_processes", str(plan.world_size), "--num_machines", str(plan.nodes),
            "--mixed_precision", {"bf16": "bf16", "fp16": "fp16"}.get(plan.precision, "no"),
            "--dynamo_backend", "no", "--main_process_port", str(port)]
    if plan.world_size > 1:
        args.append("--multi_gpu")
    if plan.nodes > 1:
        args += ["--machine_rank", str(plan.machine_rank), "--main_process_ip", str(plan.main_process_ip)]
    return args + ["--module"]


def describe(plan: LaunchPlan) -> str:
    """One line for the plan and the log."""
    how = {"none": "one process", "ddp": "DDP", "fsdp": "FSDP", "deepspeed": f"DeepSpeed ZeRO-{plan.deepspeed_stage}"}
    parts = [plan.device.upper(), plan.precision, f"{plan.world_size} process(es), {how[plan.distributed]}",
             f"attention {plan.attention}"]
    if plan.nodes > 1:
        parts.append(f"{plan.nodes} machines")
    if plan.qlora:
        parts.append("QLoRA 4-bit")
    if plan.liger:
        parts.append("Liger kernels")
    return ", ".join(parts)
