"""The vllm engine's wiring, in process, on a stand-in for vLLM (``vllm_standin/``: vLLM cannot be
installed here): what it hands vLLM (token-id prompts, exact greedy, the end-of-turn ids, delta
outputs, the adapter), and what it gives the endpoint back (streamed tokens then the end, the stop
token left out, the finish reason, Stop cancelling the request in vLLM, the counters)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from azml_magics.scoring import GenerationParams

STANDIN = Path(__file__).resolve().parent / "vllm_standin"


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDIN))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm.v1.engine.async_llm as fake

    monkeypatch.setattr(fake, "STOP_AFTER", None)
    yield fake
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        sys.modules.pop(name, None)


@pytest.fixture
def engine(standin, tiny_model_dir):
    from azml_magics.backends.local.vllm_engine import VllmEngine

    eng = VllmEngine(str(tiny_model_dir), max_batch=2)
    yield eng
    eng.close()


def job(engine, text="Hello there", on_token=None, **params):
    from azml_magics.backends.local.engine_base import Job

    p = GenerationParams(**params)
    return Job(engine.encode([{"role": "user", "content": text}], p), p, on_token)


def test_vllm_gets_the_models_folder_token_ids_and_exact_greedy(engine, standin, tiny_model_dir):
    llm = standin.created[-1]
    assert llm.engine_args["model"] == str(tiny_model_dir) and llm.engine_args["max_num_seqs"] == 2
    assert llm.engine_args["max_model_len"] == engine.context == 2048  # the tiny model's, from its config
    streamed: list = []
    j = job(engine, on_token=streamed.append, max_new_tokens=5, do_sample=False)
    result = engine.submit(j).result(timeout=10)
    sent = llm.requests[-1]
    assert sent["prompt"] == {"prompt_token_ids": j.prompt} and sent["lora"] is None
    params = sent["params"]
    assert (params.temperature, params.top_p, params.max_tokens, params.detokenize) == (0.0, 1.0, 5, False)
    assert params.stop_token_ids == engine.stop_ids and params.output_kind.name == "DELTA"
    assert result.token_ids == standin.TOKENS[:5] and result.finish_reason == "length"
    assert result.completion_tokens == 5 and result.prompt_tokens == len(j.prompt)
    assert streamed == standin.TOKENS[:5] + [None]
    assert llm.aborted == []  # a request that ended is not aborted
    assert engine.health()["engine"] == "vllm" and engine.health()["sequences"] == 1


def test_the_end_of_turn_token_ends_the_reply_and_is_left_out(engine, standin):
    standin.STOP_AFTER = 3
    streamed: list = []
    result = engine.submit(job(engine, on_token=streamed.append, max_new_tokens=50, temperature=0.8)).result(10)
    assert result.finish_reason == "stop" and result.token_ids == standin.TOKENS[:3]
    assert result.completion_tokens == 4  # the end-of-turn token counts, as on the other engines
    assert streamed == standin.TOKENS[:3] + [None]
    assert engine.decode(result.token_ids) == engine.decode(standin.TOKENS[:3])
    params = standin.created[-1].requests[-1]["params"]
    assert (params.temperature, params.top_p) == (0.8, 0.9)  # the request's own sampling


def test_stop_cancels_the_request_in_vllm_and_frees_it(engine, standin):
    from azml_magics.backends.local.engine_base import Cancelled

    started = threading.Event()
    long = job(engine, on_token=lambda t: started.set(), max_new_tokens=2000)  # 4 s of stand-in steps
    future = engine.submit(long)
    assert started.wait(10)
    assert engine.running() == 1
    long.cancel()
    with pytest.raises(Cancelled):
        future.result(timeout=10)
    llm = standin.created[-1]
    assert llm.aborted == [long.request_id] and llm.running == set()
    assert engine.running() == engine.pending() == 0 and engine.health()["cancelled"] == 1
    early = job(engine, max_new_tokens=4)
    early.cancel()  # cancelled before it was submitted: never reaches vLLM
    with pytest.raises(Cancelled):
        engine.submit(early).result(timeout=5)
    assert all(r["request_id"] != early.request_id for r in llm.requests)


def test_more_requests_than_slots_are_all_served_and_counted(engine, standin):
    jobs = [job(engine, f"question {i}", max_new_tokens=3 + i) for i in range(5)]
    futures = [engine.submit(j) for j in jobs]
    assert engine.pending() + engine.running() <= 5 and engine.running() <= 2
    results = [f.result(timeout=10) for f in futures]
    assert [len(r.token_ids) for r in results] == [3, 4, 5, 6, 7]
    assert engine.health()["largest_batch"] == 2 and max(r.batch_size for r in results) == 2


def test_an_engine_failure_is_that_requests_one_error(engine, standin, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")
        yield  # an async generator, as vLLM's

    monkeypatch.setattr(standin.created[-1], "generate", broken)
    with pytest.raises(RuntimeError, match="the vllm engine failed: CUDA out of memory"):
        engine.submit(job(engine, max_new_tokens=3)).result(timeout=10)
    assert engine.running() == 0


def test_an_unmerged_adapter_is_served_on_its_base_with_lora(standin, tiny_model_dir, tmp_path):
    import json
    import shutil

    from azml_magics.backends.local.vllm_engine import VllmEngine

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_model_dir, adapter, ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "azml-tiny-phi3", "r": 16}))
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")  # the engine reads the context from it
    (adapter / "config.json").symlink_to(tmp_path / "config.json")
    eng = VllmEngine(str(adapter), base_dir=str(tiny_model_dir))
    try:
        llm = standin.created[-1]
        assert llm.engine_args["model"] == str(tiny_model_dir) and llm.engine_args["tokenizer"] == str(adapter)
        assert llm.engine_args["enable_lora"] is True and llm.engine_args["max_lora_rank"] == 16
        eng.submit(job(eng, max_new_tokens=2)).result(timeout=10)
        lora = llm.requests[-1]["lora"]
        assert lora.lora_path == str(adapter) and lora.lora_int_id == 1
        assert eng.health()["lora"] is True
    finally:
        eng.close()
