"""Chat data: prepare (hub or local files), validate every row before upload, summarise.

Importing this package is cheap: ``datasets``, ``pandas``, ``matplotlib``, ``pyarrow`` and
``transformers`` are imported only inside the functions that need them. Reason codes, messages and
fixes: ``README.md`` next to this file (the same table as ``rules.REASONS``).
"""

from __future__ import annotations

from pathlib import Path

from .checks import fold_system
from .preparer import DEFAULT_SOURCE, SPLITS, PreparedDataset, last_prepared, prepare, record_prepared
from .report import Problem, ValidationReport
from .rules import REASONS
from .summary import DataSummary, summarize
from .validator import validate

__all__ = ["DEFAULT_SOURCE", "SPLITS", "prepare", "validate", "summarize", "sample_dir", "fold_system",
           "PreparedDataset", "record_prepared", "last_prepared", "ValidationReport", "Problem", "DataSummary", "REASONS"]


def sample_dir() -> Path:
    """The bundled sample (ultrachat schema, written by make_sample.py): train_sft.jsonl ... test_gen.jsonl."""
    return Path(__file__).resolve().parent.parent / "sample_data"
