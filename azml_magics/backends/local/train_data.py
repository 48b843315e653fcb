"""The training rows of a local fine-tune: conversations read and split as the Azure pipeline splits them,
then tokenized with the model's chat template so that only the assistant's replies carry loss.

Shared by the trainer process, the estimate probe and the tests.
"""

from __future__ import annotations

from ...files import iter_jsonl
from ..base import DataFiles

MIN_TRAIN_ROWS = 10


# ----------------------------------------------------------------------------- data
def read_conversations(path: str) -> list[list[dict]]:
    """The ``messages`` of every usable row (Azure's rules: at least two messages, one from the assistant)."""
    rows = []
    for row in iter_jsonl(path, strict=True):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or len(messages) < 2:
            continue
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            continue
        rows.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return rows


# How chat_completion_datapreprocess splits when a file is missing (Azure/azureml-assets,
# assets/training/finetune_acft_hf_nlp/src/preprocess/preprocess.py, "handeling data splits"; the same
# at commits 17bc0572 and ba707889): train only -> train "train[:80%]", validation "train[80%:90%]", test
# "train[-10%:]"; train + test -> train "train[:80%]", validation "train[80%:100%]"; train + validation ->
# train "train[:80%]", test "train[-20%:]"; all three -> each file whole. The slices are `datasets`
# percent slices of the file in its order (no shuffle), boundaries rounded to the closest row. The
# component spec says the same in words (components/preprocess/chat_completion/spec.yaml, above
# train_file_path): "The validation and test paths are optional and an automatic split from train data
# happens if they are not passed. If both validation and test files are missing, 10% of train data will
# be assigned to each of them and the remaining 80% will be used for training. If anyone of the file is
# missing, 20% of the train data will be assigned to it and the remaining 80% will be used for training".
# The pipeline spec (chat_completion_pipeline 0.0.82) only says "Path to the registered validation data
# asset" and passes the three paths through to that step.


def _pct(boundary: int, n: int) -> int:
    """A percent slice boundary as ``datasets`` computes it (rounding "closest")."""
    return int(round(boundary * n / 100.0))


def training_rows(n: int, files: DataFiles) -> int:
    """How many of ``n`` train rows Azure trains on (the slices above)."""
    return n if files.validation and files.test else _pct(80, n)


def eval_split_name(files: DataFiles) -> str:
    """What split_data evaluates on, in words (shown in the job view beside the eval loss)."""
    if files.validation:
        if files.test:
            return "the validation file"
        return "the validation file (training uses the first 80% of train; Azure keeps the last 20% as test)"
    if files.test:
        return "the last 20% of train, in file order (Azure's train[80%:100%] when no validation file is given)"
    return ("rows 80%-90% of train, in file order (Azure's train[80%:90%] when only train is given; "
            "the last 10% is its test slice)")


def split_data(files: DataFiles) -> tuple[list, list]:
    """train/eval conversations, sliced as Azure's preprocess step slices them (see above): in file
    order, never shuffled. Rows Azure would drop are filtered first; the data we submit is already clean,
    so the slices fall on the same rows."""
    train = read_conversations(files.train)
    n = len(train)
    if files.validation:
        evaluation = read_conversations(files.validation)
        if not files.test:  # Azure reserves train[-20%:] as the test split and trains on train[:80%]
            train = train[:_pct(80, n)]
    elif files.test:  # validation: train[80%:100%]
        train, evaluation = train[:_pct(80, n)], train[_pct(80, n):]
    else:  # validation: train[80%:90%]; test: train[-10%:]
        train, evaluation = train[:_pct(80, n)], train[_pct(80, n):_pct(90, n)]
    if len(train) < MIN_TRAIN_ROWS:
        raise ValueError(
            f"only {len(train)} usable training conversations after filtering; at least {MIN_TRAIN_ROWS} are needed"
        )
    return train, evaluation


# ----------------------------------------------------------------------------- tokenize
def has_generation_markers(template: str | None) -> bool:
    return bool(template) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def _ids(tokenizer, messages, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)
    return list(out["input_ids"])


def tokenize_conversation(tokenizer, messages: list[dict], max_len: int) -> dict | None:
    """input_ids and labels (-100 outside assistant replies and their end-of-turn); None if no reply fits."""
    if has_generation_markers(tokenizer.chat_template):
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    else:  # no markers: each reply is what its turn adds after the generation prompt
        ids = _ids(tokenizer, messages)
        mask = [0] * len(ids)
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = len(_ids(tokenizer, messages[:i], add_generation_prompt=True))
            end = len(_ids(tokenizer, messages[: i + 1]))
            mask[start:end] = [1] * (end - start)
    ids, mask = ids[:max_len], mask[:max_len]
    if not any(mask):
        return None
    labels = [t if k else -100 for t, k in zip(ids, mask)]
    return {"input_ids": ids, "labels": labels}


def tokenize_all(tokenizer, conversations: list, max_len: int) -> tuple[list[dict], int]:
    rows, dropped = [], 0
    for messages in conversations:
        row = tokenize_conversation(tokenizer, messages, max_len)
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    return rows, dropped
