"""GPU serving: our endpoint on the vllm engine against ``vllm serve``, on the same model folder.

For a machine with a CUDA GPU and vLLM (``pip install 'azml-magics[vllm]'``; the vllm wheel pins its
own torch). A Phi-3-architecture model of about 1.2B parameters (hidden 2048, 24 layers, 16 heads,
intermediate 5632, the tiny model's tokenizer) with seeded random weights in bf16, built offline.
Two servers on 127.0.0.1, each given the same share of the GPU's memory, the same number of
sequences and the same seed, take the load in turn (the order rotates every round):
  ours  our endpoint, ``--engine vllm`` (vLLM's AsyncLLM behind our contract, key auth and limits)
  vllm  ``vllm serve <folder>``: vLLM's own OpenAI server, the strongest baseline for this engine
Each cell: C streaming clients (1, 8, 32, 128) send the same test_gen prompts over the OpenAI chat
route (greedy, --max-new-tokens each) for --seconds. Reported per cell as in serve_engines.py.
Last line: gpu_serve: throughput_ratio_c32=<ours/vllm> throughput_ratio_c128=... ttft_ratio_c32=<p50>
errors=<n>  (ratios: medians over rounds; errors: ours, all cells).
Targets: throughput ratios >= 0.95 (what our contract costs on the same engine), TTFT ratio <= 1.2,
zero errors.

Run: python benchmarks/gpu_serve.py [--seconds 10] [--rounds 2] [--max-new-tokens 128]
(one H100/H200: about 5 minutes, most of it the two servers' start). ``--check`` builds the commands
and the engine's arguments without starting anything (a check of the script, not a measurement).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import build_phi3, parameters  # noqa: E402
from serve_engines import Server, prompts, run_cell, start_process_server  # noqa: E402

GPU_SHAPE = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=16, max_position_embeddings=4096)
MEMORY_SHARE = 0.4  # each of the two servers; the weights are 2.4 GB, the rest is paged cache
SLOTS = 128


def our_args(share: float) -> tuple[str, ...]:
    return ("--engine", "vllm", "--gpu-memory-share", str(share), "--max-batch", str(SLOTS))


def vllm_command(folder: Path, port: int, share: float) -> list[str]:
    exe = shutil.which("vllm") or str(Path(sys.executable).with_name("vllm"))
    return [exe, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--max-num-seqs", str(SLOTS),
            "--gpu-memory-utilization", str(share), "--seed", "0", "--enable-prefix-caching", "--disable-log-stats",
            "--max-model-len", str(GPU_SHAPE["max_position_embeddings"])]


def start_ours(home: Path, folder: Path, share: float) -> Server:
    from azml_magics.backends.local import endpoints

    ep = endpoints.start_endpoint(home, "ours-vllm", folder, model_ref="ours-vllm", timeout=600,
                                  server_args=our_args(share))
    if ep.details.get("engine") != "vllm":
        raise RuntimeError(f"our endpoint runs the {ep.details.get('engine')} engine, not vllm")
    return Server("ours", ep.openai_base_url, endpoints.read_key(home, "ours-vllm"), None,
                  lambda: endpoints.stop_endpoint(home, "ours-vllm"))


def start_vllm(folder: Path, share: float, log: Path) -> Server:
    from azml_magics.backends.local.endpoints import free_port

    port = free_port()
    return start_process_server("vllm", vllm_command(folder, port, share), port, log,
                                {**os.environ, "HF_HUB_OFFLINE": "1"}, str(folder), wait_s=600, stop_s=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--check", action="store_true", help="build the commands and arguments, start nothing")
    args = parser.parse_args()
    loads = [int(c) for c in args.clients.split(",")]
    from azml_magics.backends.local.tiny_model import cache_root
    from azml_magics.backends.local.vllm_engine import engine_args, serving_source

    if args.check:
        folder = Path(tempfile.mkdtemp(prefix="gpu-serve-check-"))
        print("ours:", " ".join(our_args(MEMORY_SHARE)))
        print("vllm:", " ".join(vllm_command(folder, 8000, MEMORY_SHARE)))
        print("engine args:", engine_args(serving_source(folder), slots=SLOTS, context=4096,
                                          gpu_memory_share=MEMORY_SHARE))
        print("gpu_serve: check=ok")
        return
    folder = build_phi3(cache_root() / "bench-phi3-1b-bf16", GPU_SHAPE, "bfloat16")
    print(f"model: {parameters(folder) / 1e9:.2f}B parameters, bf16, {args.max_new_tokens} new tokens, greedy")
    work = Path(tempfile.mkdtemp(prefix="gpu-serve-"))
    convs = prompts()
    table: dict = {}
    errors = 0
    servers = []
    try:
        servers.append(start_ours(work / "home", folder, MEMORY_SHARE))
        servers.append(start_vllm(folder, MEMORY_SHARE, work / "vllm.log"))
        for s in servers:  # warm-up: first requests pay for lazy set-up
            run_cell(s, 8, 0.5, 16, convs)
        for rnd in range(args.rounds):
            order = servers[rnd % 2:] + servers[:rnd % 2]
            for clients in loads:
                for s in order:
                    cell = run_cell(s, clients, args.seconds, args.max_new_tokens, convs)
                    table.setdefault((clients, s.label), []).append(cell)
                    errors += cell["errors"] if s.label == "ours" else 0
                    print(f"  round {rnd + 1} c={clients:<3} {s.label:<5} {cell['tokens_s']:8.1f} tok/s ttft p50 "
                          f"{cell['ttft_p50']:.3f} s p95 {cell['ttft_p95']:.3f} s e2e p95 {cell['e2e_p95']:.2f} s "
                          f"{cell['requests']} ok {cell['errors']} errors {cell['error_samples'] or ''}", flush=True)
    finally:
        for s in servers:
            s.stop()

    print("\n| clients | server | tokens/s | TTFT p50 s | TTFT p95 s | e2e p95 s | errors |")
    print("|---|---|---|---|---|---|---|")
    for (clients, label), cells in sorted(table.items()):
        med = lambda k: statistics.median(c[k] for c in cells)
        print(f"| {clients} | {label} | {med('tokens_s'):.0f} | {med('ttft_p50'):.3f} | {med('ttft_p95'):.3f} | "
              f"{med('e2e_p95'):.2f} | {sum(c['errors'] for c in cells)} |")

    def ratio(clients, key):
        ours, theirs = table.get((clients, "ours")), table.get((clients, "vllm"))
        pairs = [o[key] / t[key] for o, t in zip(ours or [], theirs or []) if t[key] and t[key] == t[key]]
        return statistics.median(pairs) if pairs else float("nan")

    print(f"gpu_serve: throughput_ratio_c32={ratio(32, 'tokens_s'):.2f} throughput_ratio_c128={ratio(128, 'tokens_s'):.2f} "
          f"ttft_ratio_c32={ratio(32, 'ttft_p50'):.2f} errors={errors}")


if __name__ == "__main__":
    main()
