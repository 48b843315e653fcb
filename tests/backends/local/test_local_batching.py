"""Length-sorted micro-batches: less padding, the same optimizer steps as TRL's random batches."""

from __future__ import annotations

import itertools
import random
import tempfile

import pytest

from azml_magics.backends.local import batching
from tests.paths import SAMPLE

TRAIN = SAMPLE / "train_sft.jsonl"


def brute_force_cost(indices, lengths, parts):
    rows = sorted(indices, key=lambda i: -lengths[i])
    best = None
    for cuts in itertools.combinations(range(1, len(rows)), parts - 1):
        bounds = (0, *cuts, len(rows))
        groups = [rows[a:b] for a, b in zip(bounds, bounds[1:])]
        cost = batching.padded_tokens(groups, lengths)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_split_step_is_a_least_padding_partition(seed):
    rng = random.Random(seed)
    lengths = [int(rng.lognormvariate(4, 1)) + 1 for _ in range(40)]
    indices = rng.sample(range(40), 9)
    for parts in (1, 2, 3, 4):
        groups = batching.split_step(indices, lengths, parts)
        assert len(groups) == parts and all(groups)
        assert sorted(i for g in groups for i in g) == sorted(indices)
        assert batching.padded_tokens(groups, lengths) == brute_force_cost(indices, lengths, parts)


def test_split_step_edges():
    assert batching.split_step([], [5], 3) == []
    assert sorted(map(sorted, batching.split_step([0, 1], [5, 9], 4))) == [[0], [1]]  # fewer rows than parts
    assert batching.split_step([2, 0, 1], [1, 2, 3], 1) == [[2, 1, 0]]  # longest first


@pytest.mark.parametrize("n,batch_size,parts", [(48, 8, 3), (50, 8, 3), (49, 8, 2), (10, 4, 4), (5, 8, 3), (7, 16, 6)])
def test_each_batch_holds_the_samplers_rows_and_len_is_exact(n, batch_size, parts):
    rng = random.Random(n)
    lengths = [rng.randint(1, 500) for _ in range(n)]
    order = rng.sample(range(n), n)
    sampler = batching.StepSplitBatches(order, lengths, batch_size, parts)
    batches = list(sampler)
    assert len(sampler) == len(batches)
    # Consecutive groups of `parts` micro-batches are exactly the sampler's consecutive batches.
    steps = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    at = 0
    for step in steps:
        k = min(parts, len(step))
        assert sorted(i for b in batches[at : at + k] for i in b) == sorted(step)
        at += k
    assert at == len(batches)


def test_splitting_cuts_padding_on_long_tailed_lengths():
    rng = random.Random(3)
    lengths = [min(512, int(rng.lognormvariate(4, 1)) + 10) for _ in range(400)]
    order = rng.sample(range(400), 400)
    plain = batching.padded_tokens([order[i : i + 8] for i in range(0, 400, 8)], lengths)
    split = batching.padded_tokens(batching.StepSplitBatches(order, lengths, 8, 3), lengths)
    assert split < 0.6 * plain
    assert split >= sum(lengths)


def test_choose_splits():
    assert batching.choose_splits([100] * 64, 8) == 1  # nothing to save
    assert batching.choose_splits([100, 5] * 32, 1) == 1
    rng = random.Random(0)
    tailed = [min(512, int(rng.lognormvariate(4, 1)) + 10) for _ in range(400)]
    assert 2 <= batching.choose_splits(tailed, 8) <= batching.MAX_SPLITS


# ----------------------------------------------------------------------------- real training
def long_tailed_conversations(n: int) -> list[list[dict]]:
    from azml_magics.backends.local.train_data import read_conversations

    sample = read_conversations(str(TRAIN))
    rng = random.Random(7)
    out = []
    for _ in range(n):
        convo = []
        for _ in range(max(1, min(12, int(rng.lognormvariate(0.7, 0.9))))):
            convo += rng.choice(sample)
        out.append(convo)
    return out


def train_steps(tiny_model_dir, rows, group_by_length: bool | str, **parameters):
    """(per-step losses, eval loss, trainer, padded tokens computed) for 3 optimizer steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from azml_magics.backends.local.trainer import build_trainer
    from azml_magics.plan import merge_parameters

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    values = merge_parameters({"max_steps": 3, "logging_steps": 1, "learning_rate": 3e-3, "per_device_train_batch_size": 8,
                               "per_device_eval_batch_size": 8, "max_seq_length": 256, "evaluation_strategy": "disable",
                               "apply_lora": "false", "seed": 11, **parameters}).values
    with tempfile.TemporaryDirectory() as out:
        t = build_trainer(model, tok, rows, rows[:16], values, out, 256, batches=group_by_length if isinstance(group_by_length, str) else "split" if group_by_length else "plain")
        t.args.save_strategy = "no"
        padded = []
        inner = t.data_collator

        def counting(examples):
            batch = inner(examples)
            padded.append(batch["input_ids"].numel())
            return batch

        t.data_collator = counting
        t.train()
        losses = [h["loss"] for h in t.state.log_history if "loss" in h]
        return losses, t.evaluate()["eval_loss"], t, sum(padded)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_split_steps_train_exactly_like_random_batches(tiny_model_dir, accumulation):
    from transformers import AutoTokenizer

    from azml_magics.backends.local.train_data import tokenize_all

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows, _ = tokenize_all(tok, long_tailed_conversations(64), 256)
    plain_losses, plain_eval, plain, plain_padded = train_steps(
        tiny_model_dir, rows, False, gradient_accumulation_steps=accumulation)
    ours_losses, ours_eval, ours, ours_padded = train_steps(
        tiny_model_dir, rows, True, gradient_accumulation_steps=accumulation)
    assert type(ours).__name__ == "SplitStepSFTTrainer" and ours.splits >= 2
    assert ours.args.gradient_accumulation_steps == accumulation * ours.splits
    assert plain.args.gradient_accumulation_steps == accumulation
    assert len(plain_losses) == len(ours_losses) == 3
    # Same rows in every step, same normaliser: the same losses up to float rounding.
    assert ours_losses == pytest.approx(plain_losses, rel=1e-4)
    assert ours_eval == pytest.approx(plain_eval, rel=1e-4)
    assert ours_padded < 0.8 * plain_padded


def test_the_default_is_trls_padding_free_mode_and_trains_like_padded_batches(tiny_model_dir):
    """TRL's padding_free (no packing): no padding at all, per-step losses and eval loss as padded batches."""
    from transformers import AutoTokenizer

    from azml_magics.backends.local.train_data import tokenize_all

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows, _ = tokenize_all(tok, long_tailed_conversations(64), 256)
    plain_losses, plain_eval, _, plain_padded = train_steps(tiny_model_dir, rows, "plain")
    free_losses, free_eval, free, free_padded = train_steps(tiny_model_dir, rows, "padding_free")
    assert free.args.padding_free is True
    assert free_losses == pytest.approx(plain_losses, rel=1e-5) and free_eval == pytest.approx(plain_eval, rel=1e-5)
    real = sum(len(r["input_ids"]) for r in rows[:24])  # 3 steps of 8 random rows hold about this many tokens
    assert free_padded < plain_padded and free_padded < 2 * real
