"""Load: 8 clients for 60 s against a real endpoint: zero errors, memory flat after warm-up."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from azml_magics.backends.local import endpoints
from azml_magics.backends.local.client import EndpointClient
from azml_magics.scoring import GenerationParams

SECONDS = float(os.environ.get("AZML_LOAD_SECONDS", "60"))
WARM_UP = min(15.0, SECONDS / 4)
CLIENTS = 8


@pytest.mark.slow
def test_eight_clients_for_a_minute(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    ep = endpoints.start_endpoint(home, "load", tiny_model_dir, model_ref="tiny:1")
    key = endpoints.read_key(home, "load")
    server = psutil.Process(ep.details["pid"])
    errors: list[str] = []
    done = {"score": 0, "stream": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client(i: int) -> None:
        params = GenerationParams(temperature=0.6, top_p=0.9, do_sample=True, max_new_tokens=24 + 8 * i)
        messages = [{"role": "user", "content": f"Client {i}: how many hours are in {i + 2} days?"}]
        with EndpointClient(ep.scoring_uri, key, openai_base_url=ep.openai_base_url, timeout=60) as c:
            n = 0
            while time.monotonic() < deadline:
                kind = "stream" if n % 3 == 2 else "score"
                try:
                    if kind == "stream":
                        list(c.stream_chat(messages, params))
                    else:
                        c.chat(messages, params)
                except Exception as exc:  # counted, not raised: the test reports them all
                    with lock:
                        errors.append(f"{kind}: {exc}")
                else:
                    with lock:
                        done[kind] += 1
                n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(WARM_UP)
        rss_warm = server.memory_info().rss
        for t in threads:
            t.join(SECONDS + 120)
        rss_end = server.memory_info().rss
        health_ok = endpoints.get_endpoint(home, "load").state == "Succeeded"
    finally:
        endpoints.stop_endpoint(home, "load")

    print(f"load: {done} requests in {SECONDS:.0f} s, {len(errors)} errors, "
          f"server RSS {rss_warm / 2**20:.1f} MiB after warm-up -> {rss_end / 2**20:.1f} MiB at the end")
    assert errors == []
    assert done["score"] >= CLIENTS and done["stream"] >= 1
    assert health_ok
    assert rss_end - rss_warm < max(25 * 2**20, 0.10 * rss_warm), (rss_warm, rss_end)
