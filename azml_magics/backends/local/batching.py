"""Less padding, same training: split each random batch into length-sorted micro-batches.

A random batch of chat rows is padded to its longest row; with long-tailed lengths most of a CPU's
work is padding. Length-grouped batches (transformers' ``group_by_length``) cut that, but they
change what each optimizer step learns from (a step of eight short rows, then one of eight long
ones) and the final loss with it: measured 4-14% worse after one epoch, whatever batch order or
token weighting we tried (see benchmarks/RESULTS.md).

So we keep TRL's random batches and only change how each is computed: its rows are sorted by
length and cut into ``splits`` micro-batches with the least padding, and their gradients are
accumulated (the Trainer's gradient accumulation, ``splits`` times the user's). The Trainer divides
every micro-batch's summed token loss by the whole optimizer step's target-token count
(``num_items_in_batch``), so each step's gradient is plain TRL's, up to float rounding.

Nothing heavy is imported at module level; ``split_trainer_class`` builds the trainer on first use.
"""

from __future__ import annotations

import random
from typing import Iterable, Iterator

MAX_SPLITS = 4


def split_step(indices: list[int], lengths: list[int], parts: int) -> list[list[int]]:
    """``indices`` cut into ``parts`` non-empty micro-batches (fewer only if rows are fewer) that pad least.

    Sorted longest first, a micro-batch is a contiguous run; its cost is rows x longest row, the
    tokens it computes. Exact dynamic programme over the cut points (a step has tens of rows).
    """
    rows = sorted(indices, key=lambda i: -lengths[i])
    n, parts = len(rows), max(1, min(parts, len(rows)))
    if n == 0:
        return []
    inf = float("inf")
    # best[k][i]: least cost of rows[i:] in k micro-batches; cut[k][i]: where the first one ends.
    best = [[inf] * (n + 1) for _ in range(parts + 1)]
    cut = [[n] * (n + 1) for _ in range(parts + 1)]
    best[0][n] = 0
    for k in range(1, parts + 1):
        for i in range(n - k, -1, -1):
            head = lengths[rows[i]]
            for j in range(i + 1, n - k + 2):
                cost = head * (j - i) + best[k - 1][j]
                if cost < best[k][i]:
                    best[k][i], cut[k][i] = cost, j
    out, i = [], 0
    for k in range(parts, 0, -1):
        out.append(rows[i : cut[k][i]])
        i = cut[k][i]
    return out


def padded_tokens(batches: Iterable[list[int]], lengths: list[int]) -> int:
    """Tokens computed for these batches, each padded to its longest row."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


class StepSplitBatches:
    """A batch sampler: rows in ``sampler`` order, cut into batches of ``batch_size``, each split in ``parts``.

    Full batches always give ``parts`` micro-batches (``parts`` <= ``batch_size``), so every run of
    accumulated micro-batches that makes an optimizer step holds the rows plain TRL's step holds.

    The attribute is named ``sampler`` as in torch's BatchSampler, so accelerate finds the
    RandomSampler and seeds it per epoch exactly as it does for plain TRL: the same rows per step.
    """

    def __init__(self, sampler: Iterable[int], lengths: list[int], batch_size: int, parts: int):
        self.sampler, self.lengths = sampler, lengths
        self.batch_size, self.parts = batch_size, parts

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)  # a fresh permutation each epoch
        for start in range(0, len(order), self.batch_size):
            yield from split_step(order[start : start + self.batch_size], self.lengths, self.parts)

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full * self.parts + min(rest, self.parts)


def choose_splits(lengths: list[int], batch_size: int, max_splits: int = MAX_SPLITS) -> int:
    """How many micro-batches a step of ``batch_size`` rows is worth cutting into.

    Each extra micro-batch costs a forward/backward call; it pays when it removes enough padding.
    We take the smallest count that computes at most 1.1x the real tokens over one seeded random
    epoch of this data, capped by ``max_splits`` (on the tiny model, ultrachat-shaped rows, batch 8:
    2, 3 and 4 micro-batches measured 2.2x, 2.3x and 2.6x plain TRL's tokens/s on one thread).
    """
    if batch_size <= 1 or not lengths:
        return 1
    real = sum(lengths)
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    steps = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    best = 1
    for parts in range(1, min(max_splits, batch_size) + 1):
        best = parts
        if sum(padded_tokens(split_step(s, lengths, parts), lengths) for s in steps) <= 1.1 * real:
            break
    return best


def split_trainer_class():
    """An ``SFTTrainer`` whose random optimizer steps are computed as length-sorted micro-batches.

    Build it with ``gradient_accumulation_steps`` already multiplied by ``splits``; evaluation keeps
    TRL's in-order batches, so ``eval_loss`` means what it means there.
    """
    from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
    from trl import SFTTrainer

    class SplitStepSFTTrainer(SFTTrainer):
        def __init__(self, *args, splits: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.splits = splits
            self.token_lengths = [len(ids) for ids in self.train_dataset["input_ids"]]

        def get_train_dataloader(self):
            dataset = self._remove_unused_columns(self.train_dataset, description="training")
            size = self.args.per_device_train_batch_size
            batches = StepSplitBatches(RandomSampler(dataset), self.token_lengths, size, min(self.splits, size))
            loader = DataLoader(
                dataset, batch_sampler=batches, collate_fn=self.data_collator,
                num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory,
            )
            return self.accelerator.prepare(loader)

        def _get_eval_sampler(self, eval_dataset):
            return SequentialSampler(eval_dataset) if eval_dataset is not None else None

    return SplitStepSFTTrainer
