"""A hub-shaped local dataset (ultrachat_200k's layout, generated rows) and a JSON-lines reader."""

from __future__ import annotations

import json
from pathlib import Path

HUB_SIZES = {"train_sft": 400, "test_sft": 60, "train_gen": 100, "test_gen": 40}


def ultrachat_row(split: str, i: int) -> dict:
    """A row in the ultrachat_200k schema; the text is generated, not taken from any dataset."""
    q = f"Question {i} of {split}: what is {i} plus {i % 7}?"
    messages = [{"content": q, "role": "user"}, {"content": f"{i} plus {i % 7} is {i + i % 7}.", "role": "assistant"}]
    if i % 3 == 0:
        messages += [{"content": "And times two?", "role": "user"},
                     {"content": f"That is {2 * (i + i % 7)}.", "role": "assistant"}]
    return {"prompt": q, "prompt_id": f"{split}-{i:06d}", "messages": messages}


def write_hub_dataset(root: Path, sizes: dict[str, int] = HUB_SIZES, with_info: bool = True) -> Path:
    """A folder laid out like HuggingFaceH4/ultrachat_200k on the hub: data/<split>-*.parquet + a card."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    configs = ["configs:", "- config_name: default", "  data_files:"]
    info = ["dataset_info:", "  features:", "  - name: prompt", "    dtype: string",
            "  - name: prompt_id", "    dtype: string", "  - name: messages", "    list:",
            "    - name: content", "      dtype: string", "    - name: role", "      dtype: string",
            "  splits:"]
    for split, n in sizes.items():
        rows = [ultrachat_row(split, i) for i in range(n)]
        half = n // 2  # two shards per split, as the hub has
        for k, part in enumerate((rows[:half], rows[half:])):
            pq.write_table(pa.Table.from_pylist(part), root / "data" / f"{split}-0000{k}-of-00002.parquet")
        configs += [f"  - split: {split}", f"    path: data/{split}-*"]
        info += [f"  - name: {split}", f"    num_bytes: {200 * n}", f"    num_examples: {n}"]
    card = configs + (info if with_info else [])
    (root / "README.md").write_text("---\n" + "\n".join(card) + "\n---\n# ultrachat-shaped test data\n")
    return root


def offline_datasets(monkeypatch, cache: Path) -> Path:
    """`datasets` offline with its cache in ``cache``; its config is read at import, so patch both."""
    import datasets.config
    import huggingface_hub.constants

    for name, value in (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_CACHE", str(cache))):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
