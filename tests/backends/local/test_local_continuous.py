"""The continuous-batching engine in process: each request keeps its own limit, sampling and stop
while others join and leave the running batch, and a cancelled request gives its slot back at once."""

from __future__ import annotations

import threading
import time

import pytest

from azml_magics.scoring import GenerationParams

from .engine_cases import CONVERSATIONS, randomize_weights



@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    """The tiny model with larger random weights, so greedy replies differ from prompt to prompt."""
    torch = pytest.importorskip("torch")
    from azml_magics.backends.local.continuous import ContinuousEngine

    eng = ContinuousEngine(str(tiny_model_dir), threads=1, max_batch=3)
    randomize_weights(eng.model)
    yield eng
    eng.close()


def job(engine, conversation, on_token=None, **params):
    from azml_magics.backends.local.engine_base import Job

    p = GenerationParams(**params)
    return Job(engine.encode(conversation, p), p, on_token)


def generate_reference(engine, conversation, max_new_tokens):
    """transformers' own greedy ``generate`` on the same weights, stopping where the engine stops."""
    import torch

    ids = torch.tensor([engine.encode(conversation, GenerationParams())])
    with torch.inference_mode():
        out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                    do_sample=False, eos_token_id=engine.stop_ids, pad_token_id=engine.pad_id)
    new = out[0, ids.shape[1]:].tolist()
    return [t for t in new if t not in engine.stop_ids]


def test_greedy_requests_in_one_running_batch_match_generate_alone(engine):
    jobs = [job(engine, c, max_new_tokens=16, do_sample=False) for c in CONVERSATIONS]
    results = [f.result(timeout=60) for f in [engine.submit(j) for j in jobs]]
    expected = [generate_reference(engine, c, 16) for c in CONVERSATIONS]
    assert len({tuple(e) for e in expected}) == len(CONVERSATIONS)  # the check is not vacuous
    assert [r.token_ids for r in results] == expected
    assert max(r.batch_size for r in results) == 3  # three slots: the fourth joined as one left


def test_each_request_keeps_its_own_limit_sampling_and_stream(engine):
    import torch

    torch.manual_seed(0)
    streamed = []
    greedy = job(engine, CONVERSATIONS[0], max_new_tokens=6, do_sample=False)
    sampled = job(engine, CONVERSATIONS[1], streamed.append, max_new_tokens=20, temperature=0.9, top_p=0.8)
    short = job(engine, CONVERSATIONS[2], max_new_tokens=3, temperature=0.0)
    results = [engine.submit(j).result(timeout=60) for j in (greedy, sampled, short)]
    assert results[0].token_ids == generate_reference(engine, CONVERSATIONS[0], 6)
    assert results[2].token_ids == generate_reference(engine, CONVERSATIONS[2], 3)
    for result, limit in zip(results, (6, 20, 3)):
        assert len(result.token_ids) <= limit
        if result.finish_reason == "length":
            assert result.completion_tokens == limit
    assert streamed[-1] is None and streamed[:-1] == results[1].token_ids
    samples = {tuple(engine.submit(job(engine, CONVERSATIONS[1], max_new_tokens=12, temperature=1.0,
                                       top_p=1.0)).result(timeout=60).token_ids) for _ in range(4)}
    assert len(samples) > 1  # sampling samples


def test_end_of_turn_stops_a_request_and_is_left_out(tiny_model_dir):
    torch = pytest.importorskip("torch")
    from azml_magics.backends.local.continuous import ContinuousEngine

    eng = ContinuousEngine(str(tiny_model_dir), threads=1, max_batch=2)
    try:
        end = eng.tokenizer.convert_tokens_to_ids("<|end|>")
        head = torch.nn.Linear(eng.model.config.hidden_size, eng.model.config.vocab_size, bias=True)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(-10.0)
            head.bias[end] = 10.0
        eng.model.lm_head = head
        streamed = []
        result = eng.submit(job(eng, CONVERSATIONS[0], streamed.append, max_new_tokens=50, temperature=0.7)).result(60)
        assert result.finish_reason == "stop" and result.token_ids == [] and result.completion_tokens == 1
        assert streamed == [None]
    finally:
        eng.close()


def test_a_cancelled_request_frees_its_slot_for_the_next_at_once(engine):
    from azml_magics.backends.local.engine_base import Cancelled

    started = threading.Event()
    holders = [job(engine, CONVERSATIONS[i % 4], lambda t: started.set(), max_new_tokens=1000, do_sample=False)
               for i in range(3)]
    for j in holders:
        engine.submit(j)
    assert started.wait(60)
    waiting = job(engine, CONVERSATIONS[2], max_new_tokens=4, do_sample=False)
    engine.submit(waiting)
    assert engine.running() == 3 and engine.pending() == 1  # every slot taken: it waits
    holders[0].cancel()
    with pytest.raises(Cancelled):
        holders[0].future.result(timeout=5)
    assert waiting.future.result(timeout=30).token_ids == generate_reference(engine, CONVERSATIONS[2], 4)
    for j in holders[1:]:
        j.cancel()
    queued = job(engine, CONVERSATIONS[0], max_new_tokens=4, do_sample=False)
    queued.cancel()  # cancelled before it was ever submitted: never generated
    with pytest.raises(Cancelled):
        engine.submit(queued).result(timeout=5)
    deadline = time.monotonic() + 10
    while engine.engine_active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.running() == engine.pending() == engine.engine_active() == 0


def test_row_wise_top_p_gives_the_librarys_scores_and_skips_rows_that_keep_every_token(engine):
    """The engine's top-p warper (cb_warpers) against transformers' own on a mixed batch: the same scores."""
    import torch
    from transformers import TopPLogitsWarper
    from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingTopPLogitsWarper

    from azml_magics.backends.local.cb_warpers import row_top_p_class

    assert engine.row_top_p  # swapped in on the CPU
    library = ContinuousBatchingTopPLogitsWarper(TopPLogitsWarper(top_p=0.9))
    ours = row_top_p_class()(TopPLogitsWarper(top_p=0.9))
    torch.manual_seed(1)
    scores = torch.randn(5, 300)
    for top_p in ([1.0, 0.9, 1.0, 0.5, 0.95], [1.0] * 5, [0.8] * 5):
        arg = torch.tensor(top_p + [0.0, 0.0], dtype=torch.float32).view(torch.int32)
        expected = library(scores.clone(), arg)
        got = ours(scores.clone(), arg)
        assert torch.equal(got, expected), top_p
        removed = torch.isinf(got).sum(dim=1)
        assert [bool(n) for n in removed] == [p < 1.0 for p in top_p]  # not vacuous: nucleus rows lose tokens
    for shape_seed in range(300):  # random sizes, spreads and top_p per row: the same cut every time
        g = torch.Generator().manual_seed(shape_seed)
        rows, vocab = int(torch.randint(1, 9, (), generator=g)), int(torch.randint(2, 1200, (), generator=g))
        scores = torch.randn(rows, vocab, generator=g) * float(torch.rand((), generator=g) * 5)
        arg = torch.rand(rows, generator=g).view(torch.int32)
        assert torch.equal(ours(scores.clone(), arg), library(scores.clone(), arg)), shape_seed


def test_top_p_keeps_every_token_tied_at_the_cut():
    """Where tokens tie exactly at the smallest kept value, the library's unstable sort keeps some of
    them; ours keeps all of them, and nothing else changes."""
    import torch

    from azml_magics.backends.local.cb_warpers import nucleus_scores

    probs = torch.tensor([[0.4, 0.2, 0.2, 0.1, 0.1]])  # top_p 0.5: 0.4 and one of the 0.2s would do
    scores = probs.log()
    kept = torch.isfinite(nucleus_scores(scores, torch.tensor([0.5])))
    assert kept.tolist() == [[True, True, True, False, False]]
    kept = torch.isfinite(nucleus_scores(scores, torch.tensor([0.3])))
    assert kept.tolist() == [[True, False, False, False, False]]


def test_inverse_cdf_sampling_draws_in_proportion_and_never_a_removed_token():
    import torch

    from azml_magics.backends.local.cb_warpers import inverse_cdf_sample

    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(60_000, 1)
    probs[-20_000:] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # one-hot rows (greedy requests), zeros at the end
    draws = inverse_cdf_sample(probs).squeeze(-1)
    assert set(draws[-20_000:].tolist()) == {5}
    counts = torch.bincount(draws[:-20_000], minlength=6).float() / 40_000
    assert counts[[0, 2, 5]].sum() == 0  # probability 0: never drawn
    assert torch.allclose(counts[[1, 3, 4]], torch.tensor([0.5, 0.3, 0.2]), atol=0.01)
    unnormalised = torch.tensor([[2.0, 0.0, 6.0]]).repeat(8_000, 1)  # proportional, like multinomial
    share = inverse_cdf_sample(unnormalised).float().mean() / 2
    assert abs(float(share) - 0.75) < 0.02


def test_the_engine_samples_by_inverse_cdf_on_the_cpu(engine):
    """The runner the manager built in its thread has cb_warpers' sampler; the sampled requests of the
    tests above ran through it."""
    assert engine.fast_sampling
    runner = engine.manager.batch_processor.model_runner
    assert getattr(runner._sample, "func", None).__name__ == "_sample_rows"
