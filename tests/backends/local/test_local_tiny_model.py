"""The built-in tiny model: Phi-3 architecture, trained BPE tokenizer, Phi-3 chat format, cache."""

from __future__ import annotations

import os

import pytest

from azml_magics.backends.local import tiny_model

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Summarize this dialog: Anna is late."},
    {"role": "assistant", "content": "Anna is late."},
    {"role": "user", "content": "Why?"},
    {"role": "assistant", "content": "Traffic, she says."},
]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_phi3_architecture_and_seeded_weights(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.model_type == "phi3" and config.num_hidden_layers == 2
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Phi3ForCausalLM"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    again = tiny_model.ensure_tiny_model(tmp_path / "second")  # a fresh build gives the same weights
    other = AutoModelForCausalLM.from_pretrained(again)
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert (a == b).all(), name


def test_tokenizer_special_tokens(tok):
    assert 512 <= len(tok) <= 1024
    assert tok.eos_token == "<|end|>"
    assert tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id
    for special in ("<|user|>", "<|assistant|>", "<|system|>", "<|end|>"):
        ids = tok.encode(special, add_special_tokens=False)
        assert len(ids) == 1, special  # one token each, never split by BPE
    text = "Summarize this dialog: hello world"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_chat_format_is_phi3(tok):
    text = tok.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nSummarize this dialog: Anna is late.<|end|>\n<|assistant|>\n"
    )


def test_assistant_mask_covers_exactly_the_replies_and_their_end(tok):
    out = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    spans, current = [], []
    for token, bit in zip(ids, mask):
        if bit:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    assert [tok.decode(s) for s in spans] == ["Anna is late.<|end|>\n", "Traffic, she says.<|end|>\n"]
    end_id = tok.convert_tokens_to_ids("<|end|>")
    masked_ends = [bit for token, bit in zip(ids, mask) if token == end_id]
    assert masked_ends == [0, 0, 1, 0, 1]  # system and user ends are not trained, reply ends are


def test_unknown_role_is_refused(tok):
    with pytest.raises(Exception, match="role must be system, user or assistant"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_cache_dir_from_env_and_reuse(tmp_path, monkeypatch):
    monkeypatch.setenv("AZML_MAGICS_CACHE", str(tmp_path / "c"))
    assert tiny_model.default_dir() == tmp_path / "c" / f"tiny-phi3-{tiny_model.VERSION}"
    first = tiny_model.ensure_tiny_model()
    stamp = os.stat(first / "model.safetensors").st_mtime_ns
    assert tiny_model.ensure_tiny_model() == first
    assert os.stat(first / "model.safetensors").st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp folders left behind


def test_half_built_folder_is_replaced(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("{broken")  # a crash mid-build, before the atomic rename era
    folder = tiny_model.ensure_tiny_model(target)
    assert tiny_model.is_complete(folder)
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).model_type == "phi3"
