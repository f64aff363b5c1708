"""CLIP's BPE tokenizer written in Hugging Face format, without downloading it.

The tokenizer is rebuilt from CLIP's own BPE vocabulary file, which open_clip_torch's wheel ships
as bpe_simple_vocab_16e6.txt.gz (install it with --no-deps: only that file is needed, and
open_clip itself is never imported). The result has the same 49408 token ids as
openai/clip-vit-large-patch14, the tokenizer of Stable Diffusion v1.5 and riffusion-model-v1.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from riffusion.errors import RiffusionError

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
CLIP_MODEL_MAX_LENGTH = 77
CLIP_VOCAB_SIZE = 49408
# CLIP keeps the first 49152 - 256 - 2 merges of its BPE file: with 256 byte symbols, 256
# end-of-word byte symbols and the 2 special tokens that makes 49408 ids.
_NUM_MERGES = 49152 - 256 - 2


def clip_bpe_file() -> Path:
    """Path of CLIP's bpe_simple_vocab_16e6.txt.gz inside the installed open_clip_torch wheel."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise RiffusionError(
        "CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) was not found: install it with "
        "`pip install --no-deps open_clip_torch==3.3.0`"
    )


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the others (control characters, space, ...) are
    moved to code points 256 and up, in byte order, so BPE never sees whitespace or controls. The
    dict's insertion order is the order of the first 256 vocabulary ids.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + shifted)
            shifted += 1
    return mapping


def write_clip_tokenizer(folder: str | Path) -> Path:
    """Write CLIP's BPE tokenizer in Hugging Face format (as in a diffusers tokenizer/ folder).

    Writes vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json, loadable with
    transformers.CLIPTokenizer.from_pretrained(folder). Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(clip_bpe_file(), "rt", encoding="utf-8") as file:
        # Line 0 is a version header; merges are "left right" pairs, most frequent first.
        merges = file.read().split("\n")[1 : _NUM_MERGES + 1]

    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise RiffusionError(
            f"{clip_bpe_file()}: expected {CLIP_VOCAB_SIZE} tokens, got {len(vocab)}"
        )

    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    special_tokens = {
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CLIP_MODEL_MAX_LENGTH,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special_tokens,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder
