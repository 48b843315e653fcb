"""The built-in tiny chat model, ``azml-tiny-phi3``: built offline, on first use, into a cache folder.

Tests, the quickstart notebook and smoke runs need a model that loads through the same
``transformers`` path as a hub model but costs seconds, not gigabytes. It is a real Phi-3
(``Phi3ForCausalLM``) with seeded random weights, a byte-level BPE tokenizer trained on the bundled
sample conversations and Phi-3's chat format. Its template wraps each reply *and* its ``<|end|>`` in
``{% generation %}`` so assistant-only loss teaches the model to stop; the pad token is a different
token, or the end token would be masked out of the labels.

The build is atomic (a temporary folder, then a rename), so two processes building at once, or a
crash half-way, never leave a broken model behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ...files import iter_jsonl
from ...waits import hf_bars_off, wait

NAME = "azml-tiny-phi3"
VERSION = "1"
VOCAB_SIZE = 1024
SEED = 1234

END = "<|end|>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, "<|system|>", "<|user|>", "<|assistant|>", END]

# Phi-3's format: <|role|>\n text <|end|>\n; the reply and its end marker are the generation block.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('role must be system, user or assistant, not ' + message['role']) }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>\n' }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Small enough to train in a minute on two cores, big enough that the loss visibly falls.
MODEL_SHAPE = dict(
    hidden_size=64,
    intermediate_size=192,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=2048,
)


def cache_root() -> Path:
    env = os.environ.get("AZML_MAGICS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "azml_magics"


def default_dir() -> Path:
    return cache_root() / f"tiny-phi3-{VERSION}"


def sample_files() -> list[Path]:
    """The conversations the tokenizer is trained on: the bundled sample, else the shared copy."""
    bundled = sorted((Path(__file__).resolve().parents[2] / "sample_data").glob("*.jsonl"))
    if bundled:
        return bundled
    return sorted(Path("/work/shared/data/azureml-examples").glob("*.jsonl"))


def _texts(files: list[Path]):
    for path in files:
        for row in iter_jsonl(path):
            for message in (row.get("messages") if isinstance(row, dict) else None) or []:
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    yield message["content"]


def is_complete(folder: Path) -> bool:
    return (folder / "BUILD_OK").exists()


def ensure_tiny_model(cache_dir: Path | str | None = None) -> Path:
    """Return the folder of the tiny model, building it first if it is not there yet."""
    target = Path(cache_dir).expanduser() if cache_dir else default_dir()
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with wait(f"Building the tiny model {NAME} (once; then cached)", total=3) as waiting:
            build(tmp, waiting.advance)
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_complete(target):  # someone else's half-built or stale folder: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tokenizer(files: list[Path] | None = None):
    """A byte-level BPE tokenizer trained on the sample, wrapped for ``transformers``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    files = files if files is not None else sample_files()
    if not files:
        raise FileNotFoundError("no sample conversations found to train the tiny model's tokenizer")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_texts(files), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=END,
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (END, PAD)],
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build(folder: Path, step=lambda: None) -> None:
    """Write tokenizer, config, generation config and seeded random weights into ``folder``; ``step()``
    after each of the three parts (tokenizer, weights, files written)."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    tok = build_tokenizer()
    step()
    end_id = tok.convert_tokens_to_ids(END)
    pad_id = tok.convert_tokens_to_ids(PAD)
    config = Phi3Config(
        vocab_size=len(tok),
        bos_token_id=pad_id,
        eos_token_id=end_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
        **MODEL_SHAPE,
    )
    torch.manual_seed(SEED)
    model = Phi3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[end_id, pad_id], pad_token_id=pad_id, bos_token_id=pad_id
    )
    step()
    with hf_bars_off():
        model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "README.md").write_text(
        f"# {NAME} (version {VERSION})\n\nA Phi-3-architecture model with random weights, built offline by "
        "azml_magics for tests and demos. It knows nothing until fine-tuned.\n"
    )
    (folder / "BUILD_OK").write_text(VERSION + "\n")
    step()
