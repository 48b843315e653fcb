"""GPU fine-tune throughput: our local trainer against plain TRL and TRL at its best GPU setting.

For a machine with a CUDA GPU (one H100/H200: under 5 minutes). A Phi-3-mini-shaped model (hidden
3072, 32 layers, 32 heads, intermediate 8192, vocabulary 32064: about 3.8B parameters) with random
weights in bf16, LoRA r=16 on all linear layers, batch 8, the same ultrachat-shaped rows (tokenized
once with the tiny model's tokenizer, cut at 1024 tokens), the same seed and a fixed number of
optimizer steps on every side:

- plain:    TRL's SFTTrainer on the rows, padded random batches, SDPA.
- trl_best: TRL with ``padding_free=True``, FlashAttention 2 when flash-attn is installed (else SDPA),
            Liger kernels when liger-kernel is installed.
- ours:     ``trainer.build_trainer`` with the LaunchPlan the local backend makes for this GPU.

Measured per side: tokens/s (real tokens of the timed steps, after ``--warmup`` steps), MFU (LoRA
training FLOPs: 4 x base matmul parameters per token, forward plus input gradients, the frozen
weights need no weight gradients, plus attention's 12 x layers x hidden x row length) against this
GPU's bf16 matmul peak measured in the same run (best of 10 8192^3 products), and peak memory
(``torch.cuda.max_memory_allocated``).

Run: ``python benchmarks/gpu_train.py [--steps 30] [--warmup 3]``; ``--tiny`` runs the same code on a
CPU with a two-layer model (a check of the script, not a measurement).
Last line: ``gpu_train: speedup=<ours/best TRL> mfu=<ours> peak_gb=<ours>``.
Targets: speedup >= 1.0 against the best TRL setting, MFU >= 0.40.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PHI3_MINI = dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096)
TINY = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=1024, max_position_embeddings=2048)
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def matmul_peak(device: str, dtype, n: int = 8192, tries: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(tries):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def build_model(shape: dict, device: str, dtype, attention: str):
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    config = Phi3Config(**shape, pad_token_id=0, tie_word_embeddings=False, attn_implementation=attention)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Phi3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def flops_per_token(model, mean_len: float) -> float:
    import torch

    cfg = model.config
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 4 * matmul + 12 * cfg.num_hidden_layers * cfg.hidden_size * mean_len


class Clock:
    """Step-end timestamps and the real tokens of every batch the trainer computed."""

    def __init__(self):
        self.times: list[float] = []

    def callback(self, device: str):
        import torch
        from transformers import TrainerCallback

        clock = self

        class Tick(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if device == "cuda":
                    torch.cuda.synchronize()
                clock.times.append(time.perf_counter())

        return Tick()


def run_side(name: str, args, rows, shape, device: str, dtype) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from azml_magics.backends.local import device as dev
    from azml_magics.backends.local import trainer as ours
    from azml_magics.plan import merge_parameters
    from azml_magics.spec_local import LocalSpec

    flash = dev.installed("flash_attn") and device == "cuda"
    liger = dev.installed("liger_kernel") and device == "cuda"
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    clock = Clock()
    steps = args.warmup + args.steps
    batch = 8
    with tempfile.TemporaryDirectory(prefix="azml-gpu-bench-") as out:
        if name == "ours":
            values = merge_parameters({"apply_lora": "true", "lora_r": 16, "lora_alpha": 32, "max_steps": steps,
                                       "per_device_train_batch_size": batch, "learning_rate": 1e-4, "logging_steps": 10**6,
                                       "evaluation_strategy": "disable", "seed": 42}).values
            found = dev.detect()
            launch = dev.plan_launch(values, LocalSpec(liger=liger or None), found)
            model = build_model(shape, device, dtype, launch.attention)
            t = ours.build_trainer(model, args.tokenizer, rows, [], values, out, args.max_len, launch=launch,
                                   callbacks=[clock.callback(device)])
            how = dev.describe(launch)
        else:
            best = name == "trl_best"
            attention = "flash_attention_2" if best and flash else "sdpa"
            model = build_model(shape, device, dtype, attention)
            config = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
                               logging_steps=10**6, seed=42, bf16=device == "cuda", use_cpu=device == "cpu",
                               padding_free=best, max_length=None if best else args.max_len,
                               use_liger_kernel=best and liger, activation_checkpointing=False,
                               save_strategy="no", report_to="none", disable_tqdm=True)
            t = SFTTrainer(model=model, args=config, processing_class=args.tokenizer,
                           train_dataset=Dataset.from_list(rows), peft_config=LoraConfig(**LORA),
                           callbacks=[clock.callback(device)])
            how = f"{attention}, padding_free={best}, liger={best and liger}"
        real = []
        inner = t.data_collator

        def counting(examples):
            batch_ = inner(examples)  # padding-free batches carry no attention mask: every token is real
            real.append(int(batch_["attention_mask"].sum()) if "attention_mask" in batch_ else batch_["input_ids"].numel())
            return batch_

        t.data_collator = counting
        from transformers.trainer_callback import PrinterCallback

        t.remove_callback(PrinterCallback)
        t.train()
    timed = clock.times[args.warmup:]
    seconds = timed[-1] - clock.times[args.warmup - 1] if args.warmup else timed[-1] - timed[0]
    tokens = sum(real[args.warmup: args.warmup + len(timed)])
    per_token = flops_per_token(model, sum(len(r["input_ids"]) for r in rows) / len(rows))
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else 0.0
    del t, model
    return {"tokens_per_s": tokens / seconds, "seconds": seconds, "flops_per_token": per_token, "peak_gb": peak_gb,
            "how": how}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--tiny", action="store_true", help="a CPU check of this script with a two-layer model")
    args = parser.parse_args()

    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer

    from azml_magics.backends.local import tiny_model
    from azml_magics.backends.local import trainer as ours
    from local_train import ultrachat_shaped

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_train: no CUDA GPU on this machine; run it where there is one (or --tiny to check the script)")
        return 2
    dtype = torch.float32 if args.tiny else torch.bfloat16
    shape = TINY if args.tiny else PHI3_MINI
    if args.tiny:
        args.steps, args.warmup, args.rows = min(args.steps, 4), min(args.warmup, 1), min(args.rows, 64)
    args.max_len = 1024
    args.tokenizer = AutoTokenizer.from_pretrained(tiny_model.ensure_tiny_model())
    rows, _ = ours.tokenize_all(args.tokenizer, ultrachat_shaped(args.rows, seed=1), args.max_len)
    peak = matmul_peak(device, dtype, n=1024 if args.tiny else 8192)
    name = "CPU (script check)" if args.tiny else torch.cuda.get_device_name(0)
    print(f"{name}: {'fp32' if args.tiny else 'bf16'} matmul peak {peak / 1e12:.1f} TFLOP/s; {len(rows)} rows, "
          f"{args.steps} timed steps after {args.warmup} warm-up, batch 8, LoRA r=16")
    results = {}
    for side in ("plain", "trl_best", "ours"):
        r = results[side] = run_side(side, args, rows, shape, device, dtype)
        print(f"{side:9s}: {r['tokens_per_s']:9.0f} tokens/s  MFU {r['tokens_per_s'] * r['flops_per_token'] / peak:.3f}  "
              f"peak {r['peak_gb']:.1f} GB  ({r['how']})")
    best = max(("plain", "trl_best"), key=lambda n: results[n]["tokens_per_s"])
    o = results["ours"]
    print(f"gpu_train: speedup={o['tokens_per_s'] / results[best]['tokens_per_s']:.2f} "
          f"mfu={o['tokens_per_s'] * o['flops_per_token'] / peak:.3f} peak_gb={o['peak_gb']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
