"""The endpoint's batched generator, in process: a batch gives each row what it would get alone."""

from __future__ import annotations

import pytest

from azml_magics.scoring import BadRequest, GenerationParams

from .engine_cases import CONVERSATIONS, randomize_weights



@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    """The tiny model with larger random weights, so greedy replies differ from prompt to prompt
    (the stock random init answers every prompt with the same token, which would hide mistakes)."""
    torch = pytest.importorskip("torch")
    from azml_magics.backends.local.generator import Engine

    eng = Engine(str(tiny_model_dir), threads=1)
    randomize_weights(eng.model)
    return eng


def run(engine, jobs):
    engine._run(jobs)  # the worker's own step, run here so the batch is exactly these jobs
    return [job.future.result() for job in jobs]


def job(engine, conversation, **params):
    from azml_magics.backends.local.generator import Job

    p = GenerationParams(**params)
    return Job(engine.encode(conversation, p), p)


def test_left_padded_batch_matches_each_row_alone(engine):
    alone = [run(engine, [job(engine, c, max_new_tokens=16, do_sample=False)])[0] for c in CONVERSATIONS]
    assert len({tuple(r.token_ids) for r in alone}) == len(CONVERSATIONS)  # the check is not vacuous
    batched = run(engine, [job(engine, c, max_new_tokens=16, do_sample=False) for c in CONVERSATIONS])
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert {r.batch_size for r in batched} == {4}
    assert [r.prompt_tokens for r in batched] == [len(engine.encode(c, GenerationParams())) for c in CONVERSATIONS]


def test_each_row_keeps_its_own_limit_and_sampling(engine):
    greedy_alone = run(engine, [job(engine, CONVERSATIONS[0], max_new_tokens=6, do_sample=False)])[0]
    mixed = run(engine, [
        job(engine, CONVERSATIONS[0], max_new_tokens=6, do_sample=False),
        job(engine, CONVERSATIONS[1], max_new_tokens=20, temperature=0.9, top_p=0.8),
        job(engine, CONVERSATIONS[2], max_new_tokens=3, temperature=0.0),
    ])
    assert mixed[0].token_ids == greedy_alone.token_ids  # a greedy row stays greedy beside sampled rows
    assert len(mixed[1].token_ids) <= 20 and len(mixed[2].token_ids) <= 3
    for result, limit in zip(mixed, (6, 20, 3)):
        if result.finish_reason == "length":
            assert result.completion_tokens == limit


def test_sampling_varies_and_top_p_near_zero_is_greedy(engine):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    samples = {tuple(run(engine, [job(engine, CONVERSATIONS[1], max_new_tokens=12, temperature=1.0, top_p=1.0)])[0].token_ids)
               for _ in range(4)}
    assert len(samples) > 1
    greedy = run(engine, [job(engine, CONVERSATIONS[1], max_new_tokens=12, do_sample=False)])[0].token_ids
    nucleus = run(engine, [job(engine, CONVERSATIONS[1], max_new_tokens=12, temperature=1.0, top_p=1e-6)])[0].token_ids
    assert nucleus == greedy


def test_generation_stops_at_end_of_turn_and_leaves_it_out(tiny_model_dir):
    """A model that always predicts <|end|> answers with an empty reply and finish_reason 'stop'."""
    torch = pytest.importorskip("torch")
    from azml_magics.backends.local.generator import Engine, TextDelta

    eng = Engine(str(tiny_model_dir), threads=1)
    end = eng.tokenizer.convert_tokens_to_ids("<|end|>")
    assert eng.stop_ids[0] == end
    head = torch.nn.Linear(eng.model.config.hidden_size, eng.model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[end] = 10.0
    eng.model.lm_head = head
    streamed = []
    j = job(eng, CONVERSATIONS[0], max_new_tokens=50, temperature=0.7)
    j.on_token = streamed.append
    (result,) = run(eng, [j])
    assert result.finish_reason == "stop"
    assert result.token_ids == [] and result.completion_tokens == 1
    assert streamed == [None]  # no token text, then the end signal
    assert TextDelta(eng).flush() == ""


def test_streamed_tokens_are_the_final_tokens(engine):
    from azml_magics.backends.local.generator import TextDelta

    seen = []
    j = job(engine, CONVERSATIONS[3], max_new_tokens=10, do_sample=False)
    j.on_token = seen.append
    (result,) = run(engine, [j])
    assert seen[-1] is None and seen[:-1] == result.token_ids
    delta = TextDelta(engine)
    pieces = [delta.push(t) for t in result.token_ids] + [delta.flush()]
    assert "".join(pieces) == engine.decode(result.token_ids)


def test_text_delta_holds_back_half_a_character(engine):
    from azml_magics.backends.local.generator import TextDelta

    ids = engine.tokenizer("é€ ok", add_special_tokens=False)["input_ids"]
    delta = TextDelta(engine)
    pieces = [delta.push(t) for t in ids] + [delta.flush()]
    assert "".join(pieces) == "é€ ok"
    assert all("\ufffd" not in p for p in pieces)


def test_text_delta_of_a_long_random_reply_adds_up_to_the_whole_decode(engine):
    """The incremental decode (a fast tokenizer's DecodeStream) against decoding the whole reply,
    on every token id the tiny vocabulary has, specials and byte pieces among them."""
    import random

    from azml_magics.backends.local.generator import TextDelta

    rng = random.Random(7)
    vocab = engine.tokenizer.vocab_size
    for _ in range(20):
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(1, 80))]
        delta = TextDelta(engine)
        assert delta._stream is not None  # the fast path is the one under test
        pieces = [delta.push(*ids[i:i + 3]) for i in range(0, len(ids), 3)] + [delta.flush()]
        assert "".join(pieces) == engine.decode(ids), ids


def test_one_wake_up_of_the_loop_for_every_stream_that_got_tokens_in_a_step():
    """32 streams get a token each from the engine's thread: the loop is woken once, every stream reads."""
    import asyncio
    import threading

    from azml_magics.backends.local.engine_base import LoopWaker, TokenPipe

    async def main():
        loop = asyncio.get_running_loop()
        calls = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: (calls.append(a), original(*a))[1]
        waker = LoopWaker(loop)
        pipes = [TokenPipe(waker) for _ in range(32)]
        step = threading.Thread(target=lambda: [pipe(i) for i, pipe in enumerate(pipes)])
        step.start()
        step.join()
        got = await asyncio.wait_for(asyncio.gather(*(p.take() for p in pipes)), 5)
        assert got == [[i] for i in range(32)]
        assert len(calls) == 1
        end = threading.Thread(target=lambda: [pipe(None) for pipe in pipes])  # the next step wakes again
        end.start()
        end.join()  # the whole step before the loop runs, as the engine delivers it
        assert await asyncio.wait_for(asyncio.gather(*(p.take() for p in pipes)), 5) == [[None]] * 32
        assert len(calls) == 2

    asyncio.run(main())


def test_cancelled_jobs_stop_early_or_never_start(engine):
    from azml_magics.backends.local.generator import Cancelled

    before = job(engine, CONVERSATIONS[0], max_new_tokens=40, do_sample=False)
    before.cancel()
    during = job(engine, CONVERSATIONS[1], max_new_tokens=40, do_sample=False)
    during.on_token = lambda token: during.cancel() if token is not None and len(during.tokens) >= 3 else None
    engine._run([before, during])
    for j in (before, during):
        with pytest.raises(Cancelled):
            j.future.result()
    assert len(during.tokens) == 3


def test_worker_thread_batches_requests_that_arrive_together(engine):
    engine._last_size = 2  # as after concurrent traffic: the next batch waits its window for company
    jobs = [job(engine, c, max_new_tokens=4, do_sample=False) for c in CONVERSATIONS]
    futures = [engine.submit(j) for j in jobs]
    sizes = {f.result(timeout=60).batch_size for f in futures}
    assert max(sizes) > 1


def test_prompts_beyond_the_context_and_bad_templates_are_bad_requests(engine):
    with pytest.raises(BadRequest, match="context of 2048 tokens"):
        engine.encode([{"role": "user", "content": "word " * 2100}], GenerationParams(max_new_tokens=10))
    with pytest.raises(BadRequest, match="chat template refused"):
        engine.encode([{"role": "tool", "content": "x"}], GenerationParams())


def test_a_waiter_that_gives_up_never_stops_the_worker(engine):
    """A request that timed out while queued has its future cancelled; the worker must live on."""
    queued = [job(engine, CONVERSATIONS[0], max_new_tokens=30, do_sample=False) for _ in range(3)]
    engine._last_size = 1
    first = engine.submit(queued[0])
    for j in queued[1:]:
        engine.submit(j)
        assert j.future.cancel() or j.future.running()  # cancelled unless the worker already took it
        j.cancel()
    assert first.result(timeout=60).completion_tokens >= 1
    after = job(engine, CONVERSATIONS[2], max_new_tokens=3, do_sample=False)
    assert engine.submit(after).result(timeout=60).batch_size >= 1
    assert engine._thread.is_alive()
