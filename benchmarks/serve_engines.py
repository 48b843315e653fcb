"""Benchmark: our endpoint against ``transformers serve --continuous-batching``, on the same model folder.

Three servers run side by side on 127.0.0.1 and take the load in turn (the order rotates every round,
so load from other jobs on the machine falls on all alike):
  ours          our endpoint, default engine (transformers' continuous batching behind our contract,
                key auth and limits)
  ours-batcher  our endpoint, ``--engine batcher`` (our padded ``model.generate`` batches)
  transformers  ``transformers serve <folder> --continuous-batching`` with the same page size, number of
                pages and tokens per step as ours (its CPU default would take 60% of the machine's
                memory for its cache), and the same torch thread count
on two models built offline: the tiny model and a Phi-3-architecture model of about 27M parameters
(random weights). Each cell: C streaming clients (1, 8, 32) send the same test_gen prompts over the
OpenAI chat route (greedy, --max-new-tokens each) for --seconds; requests in flight at the end finish.
Reported per cell: generated tokens/s (usage.completion_tokens of finished requests over the cell's
time), time to first token p50/p95, end-to-end p95, errors (status, exception, stream without [DONE]).
Last line: serve_engines: throughput_ratio_c8=<ours/transformers> throughput_ratio_c32=...
ttft_ratio_c8=<ours/transformers p50> errors=<n>  (ratios: medians over rounds, on the ~27M model,
where compute dominates; errors: our default engine, all cells; the table shows every server's)
Targets: throughput ratios >= 0.95, TTFT ratio <= 1.2, zero errors.

Run: python benchmarks/serve_engines.py [--seconds 6] [--rounds 2] [--max-new-tokens 128] [--clients 1,8,32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azml_magics.backends.local.continuous import MAX_BATCH_TOKENS, PAGE_SIZE  # noqa: E402 - light module
from bench_models import build_phi3, parameters  # noqa: E402

def prompts() -> list[list[dict]]:
    rows = (ROOT / "azml_magics" / "sample_data" / "test_gen.jsonl").read_text().splitlines()
    out = []
    for line in rows:
        messages = json.loads(line)["messages"]
        while messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        out.append(messages)
    return out


class Server:
    def __init__(self, label: str, url: str, key: str | None, model: str | None, stop):
        self.label, self.url, self.key, self.model, self.stop = label, url, key, model, stop


def start_ours(home: Path, name: str, folder: Path, threads: int, engine: str) -> Server:
    from azml_magics.backends.local import endpoints

    ep = endpoints.start_endpoint(home, name, folder, model_ref=name, timeout=180,
                                  server_args=("--engine", engine, "--threads", str(threads)))
    return Server(name, ep.openai_base_url, endpoints.read_key(home, name), None,
                  lambda: endpoints.stop_endpoint(home, name))


def start_process_server(name: str, cmd: list[str], port: int, log: Path, env: dict, model: str,
                         *, wait_s: float = 180, stop_s: float = 10) -> Server:
    """Start another project's OpenAI-compatible server (``<name> serve``, its output to LOG), wait for
    its /health, and return it with a stop that ends the process we started (by its handle, never by name)."""
    import httpx

    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{name} serve did not answer /health within {wait_s:.0f} s")

    def stop():
        proc.terminate()
        try:
            proc.wait(stop_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return Server(name, f"http://127.0.0.1:{port}/v1", None, model, stop)


def start_transformers(folder: Path, threads: int, log: Path) -> Server:
    from transformers import AutoConfig

    from azml_magics.backends.local.endpoints import free_port

    cfg = AutoConfig.from_pretrained(folder)
    bytes_per_page = PAGE_SIZE * cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * (
        cfg.hidden_size // cfg.num_attention_heads) * 4
    pages = ours_pages(folder)
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    cmd = [str(exe), "serve", str(folder), "--continuous-batching", "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu", "--cb-block-size", str(PAGE_SIZE), "--cb-num-blocks", str(pages),
           "--cb-max-batch-tokens", str(MAX_BATCH_TOKENS)]
    server = start_process_server("transformers", cmd, port, log, {**os.environ, "OMP_NUM_THREADS": str(threads)},
                                  str(folder))
    print(f"  transformers serve: {pages} pages of {PAGE_SIZE} tokens ({pages * bytes_per_page / 2**20:.0f} MiB)")
    return server


def ours_pages(folder: Path) -> int:
    """The page count our engine picks for this model (32 slots at full context, memory-capped)."""
    from transformers import AutoConfig

    from azml_magics.backends.local.continuous import cache_pages

    return cache_pages(AutoConfig.from_pretrained(folder), 32)


def one_request(server: Server, messages: list[dict], max_new_tokens: int) -> dict:
    import httpx

    body = {"messages": messages, "max_tokens": max_new_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    if server.model:
        body["model"] = server.model
    headers = {"Authorization": f"Bearer {server.key}"} if server.key else {}
    started = time.perf_counter()
    first, tokens, done = None, None, False
    try:
        with httpx.stream("POST", server.url + "/chat/completions", json=body, headers=headers, timeout=300) as r:
            if r.status_code != 200:
                return {"error": f"HTTP {r.status_code}"}
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    return {"error": str(chunk["error"])[:200]}
                if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                    first = time.perf_counter() - started
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
    except Exception as exc:  # noqa: BLE001 - counted as an error
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    if tokens is None or (server.key and not done):  # transformers serve ends its stream without [DONE]
        return {"error": "stream ended without usage" + ("" if done else " or [DONE]")}
    end = time.perf_counter()
    return {"ttft": first if first is not None else end - started, "e2e": end - started, "tokens": tokens, "end": end}


def run_cell(server: Server, clients: int, seconds: float, max_new_tokens: int, convs: list) -> dict:
    results: list[dict] = []
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def client(i: int) -> None:
        n = i
        while time.perf_counter() < deadline:
            result = one_request(server, convs[n % len(convs)], max_new_tokens)
            with lock:
                results.append(result)
            n += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if "error" not in r]
    wall = (max(r["end"] for r in ok) if ok else time.perf_counter()) - start
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else (xs[0] if xs else float("nan"))
    return {
        "tokens_s": sum(r["tokens"] for r in ok) / wall if ok else 0.0,
        "ttft_p50": statistics.median([r["ttft"] for r in ok]) if ok else float("nan"),
        "ttft_p95": q([r["ttft"] for r in ok], 95),
        "e2e_p95": q([r["e2e"] for r in ok], 95),
        "requests": len(ok),
        "errors": len(results) - len(ok),
        "error_samples": [r["error"] for r in results if "error" in r][:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="load per cell (in-flight requests finish)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--models", default="tiny,phi3")
    args = parser.parse_args()
    loads = [int(c) for c in args.clients.split(",")]

    from azml_magics.backends.local.tiny_model import cache_root, ensure_tiny_model

    tiny = ensure_tiny_model()
    folders = {"tiny": tiny, "phi3": build_phi3(cache_root() / "bench-phi3-27m")}
    convs = prompts()
    table: dict = {}
    errors = 0
    work = Path(tempfile.mkdtemp(prefix="serve-engines-"))
    for model in args.models.split(","):
        folder = folders[model]
        threads = 1 if parameters(folder) < 20_000_000 else (os.cpu_count() or 1)
        print(f"{model}: {parameters(folder) / 1e6:.1f}M parameters, {threads} torch thread(s), "
              f"{args.max_new_tokens} new tokens, greedy")
        servers = []
        try:
            servers.append(start_ours(work / model, f"ours-{model}", folder, threads, "transformers"))
            servers.append(start_ours(work / model, f"batcher-{model}", folder, threads, "batcher"))
            servers.append(start_transformers(folder, threads, work / f"transformers-{model}.log"))
            labels = {servers[0].label: "ours", servers[1].label: "ours-batcher", servers[2].label: "transformers"}
            for s in servers:  # warm-up: first requests pay for lazy set-up
                run_cell(s, 4, 0.1, 16, convs)
            for rnd in range(args.rounds):
                order = servers[rnd % 3:] + servers[:rnd % 3]
                for clients in loads:
                    for s in order:
                        cell = run_cell(s, clients, args.seconds, args.max_new_tokens, convs)
                        table.setdefault((model, clients, labels[s.label]), []).append(cell)
                        if labels[s.label] == "ours":
                            errors += cell["errors"]
                        print(f"  round {rnd + 1} c={clients:<2} {labels[s.label]:<12} {cell['tokens_s']:7.1f} tok/s "
                              f"ttft p50 {cell['ttft_p50']:.3f} s p95 {cell['ttft_p95']:.3f} s e2e p95 "
                              f"{cell['e2e_p95']:.2f} s  {cell['requests']} ok {cell['errors']} errors "
                              f"{cell['error_samples'] or ''}", flush=True)
        finally:
            for s in servers:
                s.stop()

    print("\n| model | clients | engine | tokens/s | TTFT p50 s | TTFT p95 s | e2e p95 s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, clients, label), cells in sorted(table.items()):
        med = lambda k: statistics.median(c[k] for c in cells)
        print(f"| {model} | {clients} | {label} | {med('tokens_s'):.0f} | {med('ttft_p50'):.3f} | "
              f"{med('ttft_p95'):.3f} | {med('e2e_p95'):.2f} | {sum(c['errors'] for c in cells)} |")

    def ratio(model, clients, key):
        ours, theirs = table.get((model, clients, "ours")), table.get((model, clients, "transformers"))
        if not ours or not theirs:
            return float("nan")
        pairs = [o[key] / t[key] for o, t in zip(ours, theirs) if t[key] and t[key] == t[key]]
        return statistics.median(pairs) if pairs else float("nan")

    model = "phi3" if "phi3" in args.models else args.models.split(",")[0]
    for other in [m for m in args.models.split(",") if m != model]:
        print(f"{other}: throughput_ratio_c8={ratio(other, 8, 'tokens_s'):.2f} "
              f"throughput_ratio_c32={ratio(other, 32, 'tokens_s'):.2f} ttft_ratio_c8={ratio(other, 8, 'ttft_p50'):.2f}")
    print(f"serve_engines: throughput_ratio_c8={ratio(model, 8, 'tokens_s'):.2f} "
          f"throughput_ratio_c32={ratio(model, 32, 'tokens_s'):.2f} "
          f"ttft_ratio_c8={ratio(model, 8, 'ttft_p50'):.2f} errors={errors}")


if __name__ == "__main__":
    main()
