"""Length-grouped batches that train like random ones: less padding, same objective.

Grouping rows of similar length into a batch cuts the padding a CPU pays for, but it changes two
things a random batch order keeps fair, and both move the final loss:

- *Which tokens weigh most.* Each step's loss is its batch's summed token loss divided by that
  batch's own target-token count, so a batch of short rows weighs each of its tokens many times
  more than a batch of long rows does. With mixed (random) batches this evens out; with grouped
  batches it does not. We divide every step by one constant instead, the mean number of target
  tokens per batch over the epoch, so each token weighs the same (the loss is the epoch's
  token mean, in expectation the same objective as random batches).
- *The order of lengths.* transformers' ``LengthGroupedSampler`` sorts each mega-batch longest
  first, so every epoch sweeps long -> short a few times. We shuffle the grouped batches instead.

The trainer class is built on first use (``grouped_trainer_class``): this module imports nothing
heavy at import time.
"""

from __future__ import annotations

import random

WINDOW_BATCHES = 50  # batches per sorting window: bigger saves more padding, smaller keeps more randomness


def target_count(labels: list[int]) -> int:
    """Tokens a causal LM is scored on in one row: labels after the one-token shift that are not -100."""
    return sum(1 for t in labels[1:] if t != -100)


def tokens_per_batch(rows: list[dict], batch_size: int) -> float:
    """The mean number of target tokens in a batch of ``batch_size`` rows over one epoch of ``rows``."""
    if not rows:
        return 0.0
    total = sum(target_count(r["labels"]) for r in rows)
    return total * min(batch_size, len(rows)) / len(rows)


def grouped_order(lengths: list[int], batch_size: int, rng: random.Random, window: int = WINDOW_BATCHES) -> list[int]:
    """Row indices in batches of similar length, in random batch order.

    Rows are shuffled, sorted by length inside windows of ``window`` batches, cut into batches, and
    the batches shuffled. Only the epoch's last batch can be short, so consecutive slices of
    ``batch_size`` (what a DataLoader takes) are exactly these batches.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = max(1, window) * batch_size
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    short = [b for b in batches if len(b) < batch_size]
    full = [b for b in batches if len(b) == batch_size]
    rng.shuffle(full)
    return [i for batch in full + short for i in batch]


def grouped_trainer_class():
    """An ``SFTTrainer`` with grouped, shuffled train batches and a token-constant loss normaliser.

    Evaluation batches stay in order (as in plain TRL), so ``eval_loss`` means what it means there.
    """
    import torch
    from torch.utils.data import Sampler, SequentialSampler
    from trl import SFTTrainer

    class GroupedSampler(Sampler):
        def __init__(self, lengths: list[int], batch_size: int):
            self.lengths, self.batch_size = lengths, batch_size

        def __len__(self):
            return len(self.lengths)

        def __iter__(self):
            # Seeded from torch's generator, which the Trainer seeds and checkpoints, like its own samplers.
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            return iter(grouped_order(self.lengths, self.batch_size, random.Random(seed)))

    class GroupedSFTTrainer(SFTTrainer):
        def __init__(self, *args, train_rows: list[dict], **kwargs):
            super().__init__(*args, **kwargs)
            self.token_lengths = [len(r["input_ids"]) for r in train_rows]
            self.batch_tokens = tokens_per_batch(train_rows, self.args.per_device_train_batch_size)

        def _get_train_sampler(self, train_dataset=None):
            return GroupedSampler(self.token_lengths, self.args.per_device_train_batch_size)

        def _get_eval_sampler(self, eval_dataset):
            return SequentialSampler(eval_dataset) if eval_dataset is not None else None

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            batches, counted = super().get_batch_samples(epoch_iterator, num_batches, device)
            if counted is not None and batches and self.batch_tokens > 0:
                counted = torch.tensor(self.batch_tokens * len(batches), device=device)
            return batches, counted

    return GroupedSFTTrainer
