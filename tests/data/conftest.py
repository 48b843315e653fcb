"""Data fixtures: a hub-shaped local dataset (offline) and the tiny model's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from .hub import offline_datasets, write_hub_dataset


@pytest.fixture
def hub_dataset(tmp_path, monkeypatch) -> Path:
    offline_datasets(monkeypatch, tmp_path / "hf-cache")
    return write_hub_dataset(tmp_path / "ultrachat_like")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tokenizer of the project's offline tiny Phi-3 (built on first use)."""
    from transformers import AutoTokenizer

    from azml_magics.backends.local.tiny_model import ensure_tiny_model

    return AutoTokenizer.from_pretrained(ensure_tiny_model())
