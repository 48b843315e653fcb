"""What a fine-tune will cost before it starts: tokens, optimizer steps, peak memory per device, time.

Pure arithmetic over a few numbers a backend supplies (the model's shape, the device, the data's
token count, a measured speed), so the plan shows the same estimate whichever backend made it, and
a run that cannot fit is refused before anything is created. The memory model, per device:

- weights: 4 bytes a parameter (fp32 master weights: full fine-tune, or LoRA on fp32); 2 for a
  LoRA base in bf16/fp16; QLoRA: 0.5 a linear weight (NF4, plus ~3% of quantization constants) and
  2 for the rest; LoRA adapters are fp32 (4 bytes a trainable parameter).
- gradients 4 and AdamW state 8 bytes a trainable parameter (2 for 8-bit optimizers); ZeRO-2
  divides gradients and optimizer state by the processes, ZeRO-3 and FSDP weights too.
- activations: 34 bytes per token per layer per hidden unit at 16-bit (Korthikanti et al. 2022,
  "Reducing Activation Recomputation in Large Transformer Models", without the attention scores,
  which SDPA/FlashAttention do not keep), twice that at fp32; with gradient checkpointing each layer
  keeps only its input and one layer is recomputed at a time. Plus the fp32 logits and their
  gradient (8 bytes a token per vocabulary entry), which dominate small models with big vocabularies.
- the runtime: 0.75 GiB on a GPU (CUDA context, cuBLAS workspace), 0.5 GiB on a CPU (Python,
  torch and the libraries, the data).
The longest micro-batch sets the peak: per-device batch x the longest row (capped at max length).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

GIB = 2**30
HEADROOM = 0.95  # the share of the device's memory a run may plan to use


@dataclass
class ModelShape:
    params: int  # all parameters
    trainable: int  # what the optimizer updates (LoRA adapters, or all)
    linear_params: int  # weights in linear layers (what QLoRA quantizes)
    layers: int
    hidden: int
    vocab: int


@dataclass
class Estimate:
    """The estimate a plan shows; bytes per device, seconds for the whole run."""

    rows: int
    tokens: int | None  # training tokens per epoch, the model's tokenizer (truncated to max length); None: not counted
    epochs: float
    optimizer_steps: int
    processes: int
    device: str  # what it runs on, in words
    parts: dict[str, int]  # weights, gradients, optimizer, activations, runtime (bytes per device)
    device_memory: int | None  # bytes per device (None: unknown)
    checkpointing: bool = False  # gradient checkpointing on (asked, or needed to fit)
    needs_checkpointing: bool = False  # it fits only with gradient checkpointing
    seconds: float | None = None
    time_basis: str = ""  # how the time was estimated (the assumption)
    notes: list[str] = field(default_factory=list)
    memory_basis: str = ""  # why the memory was not estimated, when ``parts`` is empty

    @property
    def memory_per_device(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.device_memory is None or self.memory_per_device <= HEADROOM * self.device_memory

    def to_json(self) -> dict:
        return {**asdict(self), "memory_per_device": self.memory_per_device, "fits": self.fits}

    def lines(self) -> list[str]:
        """What the plan and the dry run show."""
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items())
        limit = f" of {self.device_memory / GIB:.1f} GiB" if self.device_memory else ""
        tokens = (f"{self.tokens:,} tokens per epoch (model's tokenizer)" if self.tokens is not None
                  else "tokens not counted (the model's tokenizer is not at hand)")
        out = [
            f"estimate: {self.rows:,} training rows, {tokens}, "
            f"{self.epochs:g} epoch(s), {self.optimizer_steps:,} optimizer steps on {self.processes} process(es)",
            f"estimate: peak memory per device {self.memory_per_device / GIB:.2f} GiB{limit} on {self.device} "
            f"({parts} GiB){'; gradient checkpointing on' if self.checkpointing else ''}"
            + ("" if self.fits else " - DOES NOT FIT")
            if self.parts else f"estimate: peak memory per device not estimated on {self.device} ({self.memory_basis})",
        ]
        if self.seconds is not None:
            out.append(f"estimate: time {_duration(self.seconds)} ({self.time_basis})")
        elif self.time_basis:
            out.append(f"estimate: time not estimated ({self.time_basis})")
        return out + [f"estimate: {n}" for n in self.notes]

    def refusal(self) -> str:
        """The one line that refuses a run that does not fit."""
        return (f"this fine-tune needs about {self.memory_per_device / GIB:.2f} GiB per device and {self.device} has "
                f"{(self.device_memory or 0) / GIB:.2f} GiB ({', '.join(f'{k} {v / GIB:.2f}' for k, v in self.parts.items())} GiB); "
                "lower per_device_train_batch_size or max_seq_length, use LoRA (apply_lora: true), "
                "local.qlora, or local.gradient_checkpointing: true.")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def optimizer_steps(rows: int, per_device_batch: int, grad_accum: int, processes: int, epochs: float,
                    max_steps: int = -1) -> int:
    """The Trainer's count: batches per process per epoch, divided by gradient accumulation."""
    if max_steps and max_steps > 0:
        return max_steps
    batches = math.ceil(rows / max(1, per_device_batch * processes))
    per_epoch = max(1, math.ceil(batches / max(1, grad_accum)))
    return math.ceil(per_epoch * epochs)


def memory(shape: ModelShape, *, precision: str, lora: bool, qlora: bool, batch: int, seq_len: int,
           processes: int = 1, sharding: str = "none", checkpointing: bool = False, optim: str = "adamw_torch",
           gpu: bool = False) -> dict[str, int]:
    """Peak bytes per device, by part (see the module docstring for the model)."""
    half = precision in ("bf16", "fp16")
    if qlora:
        weights = shape.linear_params * 0.5 * 1.03 + (shape.params - shape.linear_params) * 2
    elif lora and half:
        weights = shape.params * 2
    else:
        weights = shape.params * 4
    if lora or qlora:
        weights += shape.trainable * 4  # the fp32 adapters
    grads = shape.trainable * 4
    state = shape.trainable * (2 if "8bit" in optim else 4 if "adafactor" in optim else 8)
    n = max(1, processes)
    if sharding in ("zero2", "zero3", "fsdp"):
        grads, state = grads / n, state / n
    if sharding in ("zero3", "fsdp"):
        weights = weights / n
    tokens = batch * seq_len
    act_bytes = 2 if half else 4
    per_layer = 17 * act_bytes * tokens * shape.hidden  # 34 bytes at 16-bit
    if checkpointing:
        activations = shape.layers * act_bytes * tokens * shape.hidden + per_layer
    else:
        activations = shape.layers * per_layer
    activations += 8 * tokens * shape.vocab  # fp32 logits and their gradient
    runtime = 0.75 * GIB if gpu else 0.5 * GIB
    parts = {"weights": weights, "gradients": grads, "optimizer": state, "activations": activations, "runtime": runtime}
    return {k: int(v) for k, v in parts.items()}


def train_seconds(tokens: int, epochs: float, tokens_per_second: float, processes: int,
                  eval_tokens: int = 0, evaluations: int = 0) -> float:
    """Training tokens over the measured speed (processes assumed to scale linearly), plus evaluation
    at a third of a training token's cost (a forward pass, no backward)."""
    rate = tokens_per_second * max(1, processes)
    return tokens * epochs / rate + evaluations * eval_tokens / (3 * rate)
