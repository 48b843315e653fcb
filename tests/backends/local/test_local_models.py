"""Model names on the local backend: aliases, hub ids, folders, the tiny model, offline errors."""

from __future__ import annotations

import time

import pytest

from azml_magics.backends.local import models
from azml_magics.errors import AzmlError, NotFound


@pytest.mark.parametrize(
    "spec, kind, ref",
    [
        ("azml-tiny-phi3", "tiny", "azml-tiny-phi3"),
        ("Phi-3-mini-4k-instruct", "hub", "microsoft/Phi-3-mini-4k-instruct"),
        ("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/7", "hub", "microsoft/Phi-3-mini-4k-instruct"),
        ("azureml:Phi-3-mini-4k-instruct:3", "hub", "microsoft/Phi-3-mini-4k-instruct"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "hub", "Qwen/Qwen2.5-0.5B-Instruct"),
    ],
)
def test_resolve(spec, kind, ref):
    got = models.resolve(spec)
    assert (got.kind, got.ref) == (kind, ref)


def test_resolve_folder(tiny_model_dir):
    got = models.resolve(str(tiny_model_dir))
    assert got.kind == "folder" and got.ref == str(tiny_model_dir)
    assert models.load_model(got).config.model_type == "phi3"


def test_folder_without_config_and_missing_folder(tmp_path):
    with pytest.raises(AzmlError, match="has no config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(NotFound, match="does not exist"):
        models.resolve(str(tmp_path / "nope"))


def test_unknown_bare_name_names_the_ways_out():
    with pytest.raises(NotFound) as err:
        models.resolve("gpt-17")
    assert "azml-tiny-phi3" in str(err.value) and "\n" not in str(err.value)


def test_offline_hub_model_fails_fast_naming_the_tiny_model(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    start = time.monotonic()
    with pytest.raises(AzmlError) as err:
        models.model_info("Phi-3-mini-4k-instruct")
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "microsoft/Phi-3-mini-4k-instruct" in msg and "azml-tiny-phi3" in msg and "\n" not in msg


def test_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(models, "HUB", "hub.invalid")  # a name that never resolves (RFC 2606)
    with pytest.raises(AzmlError, match="unreachable.*azml-tiny-phi3"):
        models.check_available(models.resolve("microsoft/Phi-3-mini-4k-instruct"), timeout=2)


def test_tiny_model_info_defaults_learn_on_cpu(tiny_model_dir):
    from azml_magics.plan import merge_parameters

    info = models.model_info("azml-tiny-phi3")
    assert info.tasks == ["chat-completion"]
    assert info.finetune_allow_list is None and info.inference_allow_list is None
    effective = merge_parameters({}, info.model_defaults)
    assert not effective.dropped_model_defaults  # every default is a real pipeline input
    assert effective.source_of("learning_rate") == "model default"


def test_hub_defaults_are_valid_inputs():
    from azml_magics.plan import merge_parameters

    assert not merge_parameters({}, models.CPU_DEFAULTS).dropped_model_defaults


def test_pad_token_added_when_it_equals_eos(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.pad_token = tok.eos_token
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    loaded = models.load_tokenizer(models.resolve(str(tmp_path)))
    assert loaded.pad_token_id != loaded.eos_token_id
