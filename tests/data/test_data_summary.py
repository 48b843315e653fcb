"""summarize(): the table's numbers, token counts, examples and the histogram image."""

from __future__ import annotations

import io
import json

import numpy as np

from azml_magics.data import sample_dir, summarize

from .hub import read_jsonl


def test_table_numbers_match_the_files():
    summary = summarize(sample_dir())
    assert summary.splits == {"test_gen": 48, "test_sft": 52, "train_gen": 120, "train_sft": 260}
    rows = read_jsonl(sample_dir() / "train_sft.jsonl")
    table = summary.table.loc["train_sft"]
    n_messages = np.array([len(r["messages"]) for r in rows])
    assert table.loc["messages per conversation", "mean"] == n_messages.mean()
    assert table.loc["messages per conversation", "max"] == n_messages.max()
    chars = np.array([sum(len(m["content"]) for m in r["messages"] if m["role"] == "assistant") for r in rows])
    assert table.loc["assistant characters", "p90"] == np.percentile(chars, 90)
    assert table.loc["user turns per conversation", "rows"] == 260
    assert "system characters" not in table.index  # the sample has no system messages
    assert summary.unit == "characters"


def test_examples_come_from_the_training_split_and_render_readably():
    summary = summarize(sample_dir(), examples=3)
    first = read_jsonl(sample_dir() / "train_sft.jsonl")[:3]
    assert summary.examples == [r["messages"] for r in first]
    text = summary.rendered_examples()[0]
    assert text.splitlines()[0] == f"user: {first[0]['messages'][0]['content']}"
    assert "--- example 3 ---" in str(summary)


def test_histogram_is_a_real_png(tmp_path):
    import matplotlib.image as mpimg

    summary = summarize(sample_dir())
    assert summary.histogram_png.startswith(b"\x89PNG\r\n\x1a\n")
    image = mpimg.imread(io.BytesIO(summary.histogram_png), format="png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert summary.save_histogram(tmp_path / "h.png").read_bytes() == summary.histogram_png
    html = summary._repr_html_()
    assert "data:image/png;base64," in html and "<table" in html


def test_token_counts_with_the_tiny_tokenizer(tiny_tokenizer):
    summary = summarize(sample_dir() / "test_sft.jsonl", tokenizer=tiny_tokenizer)
    rows = read_jsonl(sample_dir() / "test_sft.jsonl")
    table = summary.table.loc["test_sft"]
    user = [sum(len(tiny_tokenizer(m["content"], add_special_tokens=False)["input_ids"])
                for m in r["messages"] if m["role"] == "user") for r in rows]
    assert table.loc["user tokens", "max"] == max(user)
    whole = [len(tiny_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
             for r in rows]
    assert table.loc["tokens per conversation", "mean"] == np.mean(whole)
    assert summary.unit == "tokens"


def test_broken_rows_are_skipped_not_fatal(tmp_path):
    good = read_jsonl(sample_dir() / "train_sft.jsonl")[:5]
    lines = [json.dumps(r) for r in good] + ["{broken", '{"messages": "x"}']
    path = tmp_path / "train_sft.jsonl"
    path.write_text("\n".join(lines))
    summary = summarize(path)
    assert summary.splits == {"train_sft": 5}
    assert summary.table.loc[("train_sft", "messages per conversation"), "rows"] == 5


def test_real_shared_files_summarize_with_system_role(tiny_tokenizer):
    from .test_data_validate import SYSTEM, TRAIN

    summary = summarize({"train_sft": SYSTEM, "test_sft": TRAIN}, tokenizer=tiny_tokenizer, examples=1)
    assert summary.splits == {"train_sft": 100, "test_sft": 79}
    assert summary.table.loc[("train_sft", "system characters"), "rows"] == 100
    assert summary.examples[0][0]["role"] == "system"


def test_rows_longer_than_the_token_limit_are_counted_per_split(tiny_tokenizer):
    rows = read_jsonl(sample_dir() / "test_sft.jsonl")
    whole = [len(tiny_tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
             for r in rows]
    limit = int(np.median(whole))
    summary = summarize(sample_dir() / "test_sft.jsonl", tokenizer=tiny_tokenizer, max_seq_length=limit)
    assert summary.limit == limit
    assert summary.cut == {"test_sft": sum(1 for n in whole if n > limit)} and 0 < summary.cut["test_sft"] < len(rows)
    line = summary.cut_lines()[0]
    assert line == f"test_sft: {summary.cut['test_sft']} of {len(rows)} rows are longer than {limit} tokens and would be cut"
    assert line in str(summary) and line in summary._repr_html_()
    assert summarize(sample_dir() / "test_sft.jsonl").cut_lines() == []  # no tokenizer: no token limit claim


def test_one_small_histogram_per_split(tmp_path):
    import matplotlib.image as mpimg

    one = mpimg.imread(io.BytesIO(summarize(sample_dir() / "test_sft.jsonl").histogram_png), format="png")
    four = mpimg.imread(io.BytesIO(summarize(sample_dir()).histogram_png), format="png")
    assert one.shape[0] == four.shape[0] and four.shape[1] == 4 * one.shape[1]  # side by side, not overlaid
