"""Tests for PromptEmbedder: weights, long-prompt chunking, batch padding and the cache.

Uses the real CLIP tokenizer (written offline from open_clip's vocabulary) and a tiny random
CLIPTextModel with CLIP's vocabulary and 77 positions.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from riffusion.diffusion.prompt_embeddings import CacheInfo, PromptEmbedder
from riffusion.testing import CLIP_VOCAB_SIZE, write_clip_tokenizer

HIDDEN = 32
CHUNK = 77


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp_path_factory.mktemp("clip")))


def make_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CHUNK,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config).eval()


@pytest.fixture(scope="module")
def encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """Shared by tests that do not modify the encoder."""
    return make_encoder(tokenizer)


@pytest.fixture
def embedder(tokenizer: CLIPTokenizer, encoder: CLIPTextModel) -> PromptEmbedder:
    return PromptEmbedder(tokenizer, encoder)


@torch.no_grad()
def plain_encoding(
    tokenizer: CLIPTokenizer, encoder: CLIPTextModel, prompts: list[str]
) -> torch.Tensor:
    """(len(prompts), 77, hidden): what diffusers' StableDiffusionPipeline.encode_prompt computes
    for Stable Diffusion 1.x (padded to 77, truncated, no attention mask, last hidden state)."""
    ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return encoder(ids.to(encoder.device))[0]


def token_count(tokenizer: CLIPTokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


@contextmanager
def encoder_batches(encoder: CLIPTextModel) -> Iterator[list[int]]:
    """Records the batch size of every encoder forward pass made inside the block."""
    batches: list[int] = []
    handle = encoder.register_forward_hook(lambda _m, args, _out: batches.append(len(args[0])))
    try:
        yield batches
    finally:
        handle.remove()


# --- weights ---------------------------------------------------------------------------------


def test_unweighted_prompts_are_the_plain_clip_encoding(
    embedder: PromptEmbedder, tokenizer: CLIPTokenizer, encoder: CLIPTextModel
) -> None:
    prompts = ["", "lofi hip hop beat", "Jazz, PIANO; 120 bpm!", "a  b\tc", "colon: not a weight"]
    result = embedder.embed(prompts)
    assert result.shape == (len(prompts), CHUNK, HIDDEN)
    assert torch.equal(result, plain_encoding(tokenizer, encoder, prompts))


def test_escaped_brackets_are_plain_text(
    embedder: PromptEmbedder, tokenizer: CLIPTokenizer, encoder: CLIPTextModel
) -> None:
    result = embedder.embed([r"piano \(live\) \[demo\]", "unbalanced (piano"])
    expected = plain_encoding(tokenizer, encoder, ["piano (live) [demo]", "unbalanced (piano"])
    assert torch.equal(result, expected)


@pytest.mark.parametrize("weight", [1.5, 0.5, 0.0, -1.0])
def test_weight_changes_only_its_tokens(
    embedder: PromptEmbedder, tokenizer: CLIPTokenizer, encoder: CLIPTextModel, weight: float
) -> None:
    """e + w * (z - e) on the weighted tokens' rows; every other row is untouched."""
    weighted = embedder.embed([f"lofi (vinyl crackle:{weight}) beat"])[0]
    plain, empty = plain_encoding(tokenizer, encoder, ["lofi vinyl crackle beat", ""])

    start = 1 + token_count(tokenizer, "lofi")  # after BOS
    stop = start + token_count(tokenizer, "vinyl crackle")
    rows = torch.zeros(CHUNK, dtype=torch.bool)
    rows[start:stop] = True

    assert torch.equal(weighted[~rows], plain[~rows])
    expected = empty[rows] + weight * (plain[rows] - empty[rows])
    torch.testing.assert_close(weighted[rows], expected)
    assert not torch.allclose(weighted[rows], plain[rows])


def test_weight_zero_reads_as_the_empty_prompt(
    embedder: PromptEmbedder, tokenizer: CLIPTokenizer, encoder: CLIPTextModel
) -> None:
    weighted = embedder.embed(["(piano drums:0)"])[0]
    empty = plain_encoding(tokenizer, encoder, [""])[0]
    assert torch.equal(weighted[1 : 1 + token_count(tokenizer, "piano drums")], empty[1:3])


def test_emphasis_syntax_equals_explicit_weights(embedder: PromptEmbedder) -> None:
    result = embedder.embed(["(piano) [drums] ((bass))", "(piano:1.1) [drums] (bass:1.21)"])
    torch.testing.assert_close(result[0], result[1])
    assert not torch.equal(result[0], embedder.embed(["piano drums bass"])[0])


# --- long prompts and batch padding ----------------------------------------------------------


def test_long_prompt_is_encoded_in_chunks(
    embedder: PromptEmbedder, tokenizer: CLIPTokenizer, encoder: CLIPTextModel
) -> None:
    assert token_count(tokenizer, "piano drums") == 2  # one token per word below
    result = embedder.embed(["piano " * 80 + "drums " * 10])
    assert result.shape == (1, 2 * CHUNK, HIDDEN)
    expected = plain_encoding(tokenizer, encoder, ["piano " * 75, "piano " * 5 + "drums " * 10])
    torch.testing.assert_close(result[0], expected.flatten(0, 1), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("words", "chunks"), [(75, 1), (76, 2), (150, 2), (151, 3)])
def test_chunk_count(embedder: PromptEmbedder, words: int, chunks: int) -> None:
    assert embedder.embed(["piano " * words]).shape == (1, chunks * CHUNK, HIDDEN)


def test_weights_in_a_later_chunk(embedder: PromptEmbedder) -> None:
    plain = embedder.embed(["piano " * 80 + "drums"])[0]
    weighted = embedder.embed(["piano " * 80 + "(drums:2)"])[0]
    drums = CHUNK + 1 + 5  # second chunk: BOS, 5 pianos, drums
    changed = (weighted != plain).any(dim=1).nonzero().flatten().tolist()
    assert changed == [drums]


def test_batch_rows_are_padded_with_empty_chunks(
    embedder: PromptEmbedder, tokenizer: CLIPTokenizer, encoder: CLIPTextModel
) -> None:
    result = embedder.embed(["drums", "piano " * 100, ""])
    assert result.shape == (3, 2 * CHUNK, HIDDEN)
    drums, empty = plain_encoding(tokenizer, encoder, ["drums", ""])
    torch.testing.assert_close(result[0], torch.cat([drums, empty]), rtol=0, atol=1e-6)
    torch.testing.assert_close(result[2], torch.cat([empty, empty]), rtol=0, atol=1e-6)


def test_no_prompts(embedder: PromptEmbedder) -> None:
    assert embedder.embed([]).shape == (0, CHUNK, HIDDEN)


# --- dtype -----------------------------------------------------------------------------------


def test_bfloat16_encoder(tokenizer: CLIPTokenizer) -> None:
    encoder = make_encoder(tokenizer).to(torch.bfloat16)
    embedder = PromptEmbedder(tokenizer, encoder)
    plain, empty = plain_encoding(tokenizer, encoder, ["piano drums", ""])

    result = embedder.embed(["piano drums", "(piano:1.5) drums"])
    assert result.dtype == torch.bfloat16
    assert torch.equal(result[0], plain)
    expected = empty[1].float() + 1.5 * (plain[1].float() - empty[1].float())
    assert torch.equal(result[1, 1], expected.to(torch.bfloat16))  # rounded once, at the end
    assert torch.equal(result[1, 2:], plain[2:])


# --- cache -----------------------------------------------------------------------------------


def test_repeated_prompts_do_not_run_the_encoder(
    embedder: PromptEmbedder, encoder: CLIPTextModel
) -> None:
    first = embedder.embed(["piano", "(drums:1.2)"])
    with encoder_batches(encoder) as batches:
        second = embedder.embed(["(drums:1.2)", "piano", "piano"])
    assert batches == []
    assert torch.equal(second, first[[1, 0, 0]])
    assert embedder.cache_info() == CacheInfo(hits=2, misses=2, size=2, max_size=64)


def test_new_prompts_are_encoded_together_once(
    embedder: PromptEmbedder, encoder: CLIPTextModel
) -> None:
    with encoder_batches(encoder) as batches:
        embedder.embed(["piano", "piano", "piano " * 80])
    assert batches == [1, 3]  # the empty chunk, then the three chunks of two distinct prompts


def test_returned_tensor_does_not_alias_the_cache(embedder: PromptEmbedder) -> None:
    first = embedder.embed(["piano"])
    expected = first.clone()
    first.zero_()
    assert torch.equal(embedder.embed(["piano"]), expected)


def test_cache_is_a_bounded_lru(tokenizer: CLIPTokenizer, encoder: CLIPTextModel) -> None:
    embedder = PromptEmbedder(tokenizer, encoder, cache_size=2)
    for prompt in ["a", "b", "a", "c"]:  # "a" is used again before "c" arrives, so "b" goes
        embedder.embed([prompt])
    assert embedder.cache_info() == CacheInfo(hits=1, misses=3, size=2, max_size=2)
    with encoder_batches(encoder) as batches:
        embedder.embed(["a", "c"])
    assert batches == []
    with encoder_batches(encoder) as batches:
        embedder.embed(["b"])
    assert batches == [1]


def test_cache_can_be_disabled(tokenizer: CLIPTokenizer, encoder: CLIPTextModel) -> None:
    embedder = PromptEmbedder(tokenizer, encoder, cache_size=0)
    embedder.embed(["piano"])
    with encoder_batches(encoder) as batches:
        embedder.embed(["piano"])
    assert batches == [1]
    assert embedder.cache_info().size == 0
    with pytest.raises(ValueError, match="cache_size"):
        PromptEmbedder(tokenizer, encoder, cache_size=-1)


def test_cache_follows_in_place_weight_changes(tokenizer: CLIPTokenizer) -> None:
    encoder = make_encoder(tokenizer)
    embedder = PromptEmbedder(tokenizer, encoder)
    before = embedder.embed(["piano"])
    with torch.no_grad():
        encoder.get_input_embeddings().weight.mul_(2.0)
    after = embedder.embed(["piano"])
    assert not torch.equal(after, before)
    assert torch.equal(after[0], plain_encoding(tokenizer, encoder, ["piano"])[0])


def test_cache_follows_dtype_changes(tokenizer: CLIPTokenizer) -> None:
    encoder = make_encoder(tokenizer)
    embedder = PromptEmbedder(tokenizer, encoder)
    assert embedder.embed(["piano"]).dtype == torch.float32
    encoder.to(torch.bfloat16)
    result = embedder.embed(["piano"])
    assert result.dtype == torch.bfloat16
    assert torch.equal(result[0], plain_encoding(tokenizer, encoder, ["piano"])[0])


def test_cache_follows_a_replaced_encoder(tokenizer: CLIPTokenizer) -> None:
    embedder = PromptEmbedder(tokenizer, make_encoder(tokenizer))
    before = embedder.embed(["piano"])
    torch.manual_seed(1)
    embedder.text_encoder = CLIPTextModel(embedder.text_encoder.config).eval()
    after = embedder.embed(["piano"])
    assert not torch.equal(after, before)
    assert torch.equal(after[0], plain_encoding(tokenizer, embedder.text_encoder, ["piano"])[0])
