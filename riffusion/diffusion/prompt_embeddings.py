"""Text prompts -> CLIP text embeddings for the UNet's cross-attention, with weights and chunking.

Weight syntax
    ``(word)``, ``[word]``, ``(word:1.3)``, ... parsed by ``prompt_weights.parse_weighted_prompt``.
    Each token gets the weight of the text it came from; BOS, EOS and padding get 1.

Long prompts
    CLIP only has 77 positions. Tokens are cut into chunks of 75, each chunk is wrapped as
    ``BOS, tokens, EOS, pad...`` (77 ids, exactly what the tokenizer produces for a short prompt),
    encoded on its own, and the chunks' hidden states are concatenated along the token axis:
    a prompt of ``n`` chunks embeds to ``n * 77`` tokens. The UNet's cross-attention accepts any
    number of key tokens, so it attends over all chunks at once. Rows of one ``embed()`` call are
    padded to the same number of chunks with the encoding of the empty chunk (what ``""``
    encodes to), so that they can be batched (prompt with negative prompt) and interpolated.

Weighting maths
    Let ``z[i]`` be the encoder's last hidden state at position ``i`` of a chunk and ``e[i]`` the
    hidden state at the same position of the empty chunk. A token with weight ``w`` becomes::

        z'[i] = e[i] + w * (z[i] - e[i])

    i.e. the token's deviation from the empty prompt is scaled (as compel does). Why this rather
    than the popular "multiply by ``w``, then rescale the chunk to its original mean":

    - The empty prompt is the reference the model already uses: classifier-free guidance pushes
      from the unconditional (empty-prompt) prediction towards the conditional one. What a token
      adds to the conditioning is its deviation from that baseline, so that is what a weight should
      scale. ``w > 1`` extrapolates the token's contribution, ``w = 0`` makes its position read
      exactly like the empty prompt, ``0 < w < 1`` interpolates, and a negative weight points the
      position away from the word (allowed, but rarely useful).
    - Scaling ``z`` itself also scales what every position has in common (the final LayerNorm's
      bias, for one), not just what the word contributes. The mean restoration then rescales
      every token of the chunk, unweighted ones included, by a ratio of two means of LayerNorm
      outputs. Each normalised token has zero mean by construction, so these means say little
      about magnitude, can be near zero, and can change sign with a zero or negative weight,
      which would blow up or invert the whole chunk.
    - Here a weight changes only its own tokens' rows; a prompt without weights is bit for bit
      the plain CLIP encoding (diffusers' ``encode_prompt`` for prompts of up to 75 tokens).

    Weights act after the encoder, so they do not change how later tokens attend to a weighted
    token inside CLIP; only what the UNet's cross-attention reads at that position.

Caching
    Embeddings are cached per prompt string in a bounded LRU. The cache is keyed on the text
    encoder's identity, device, dtype and the storage and in-place version counter of each of its
    parameters, and is emptied when any of these change (``.to()``, weight loading, LoRA fusing).

Threads may share an embedder: each ``embed()`` call holds its lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Sequence

import torch
from transformers import CLIPTextModel, CLIPTokenizer

from riffusion.diffusion.prompt_weights import parse_weighted_prompt
from riffusion.lru_cache import CacheInfo, LRUCache

DEFAULT_CACHE_SIZE = 64


class PromptEmbedder:
    """Encodes weighted prompts of any length with a CLIP tokenizer and text encoder.

    embed() returns one row per prompt, all padded to the same token length so that rows can be
    batched (positive with negative for guidance) and interpolated (start with end prompt).
    """

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        """cache_size: how many prompts' embeddings to keep; 0 disables the cache."""
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self._cache: LRUCache[str, torch.Tensor] = LRUCache(cache_size)
        self._cache_key: Hashable = None
        self._empty_chunk: torch.Tensor | None = None
        self._lock = threading.Lock()

    @property
    def chunk_length(self) -> int:
        """Token positions per chunk, BOS and EOS included (77 for CLIP)."""
        # Some tokenizer configs leave model_max_length at a huge sentinel; the encoder's position
        # table is the real limit.
        return min(
            self.tokenizer.model_max_length,
            self.text_encoder.config.max_position_embeddings,
        )

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """(len(prompts), chunks * 77, hidden) embeddings on the text encoder's device and dtype.

        chunks is the largest chunk count among the prompts. The result is a new tensor; the
        cached embeddings it was built from are never handed out.
        """
        with self._lock:
            self._invalidate_if_encoder_changed()
            empty = self._encode_empty_chunk()
            rows = self._lookup(prompts)
        if not rows:
            return empty.new_empty((0, *empty.shape))

        length = max(row.shape[0] for row in rows)
        padded = [
            torch.cat([row, empty.repeat((length - row.shape[0]) // empty.shape[0], 1)])
            for row in rows
        ]
        return torch.stack(padded)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and occupancy of the embedding cache, counted per distinct prompt of each
        embed() call."""
        return self._cache.info()

    def clear_cache(self) -> None:
        """Forget all cached embeddings (needed only for changes the cache key cannot see)."""
        self._cache.clear()
        self._empty_chunk = None

    def _lookup(self, prompts: Sequence[str]) -> list[torch.Tensor]:
        """One (chunks * 77, hidden) embedding per prompt, from the cache or freshly encoded."""
        found: dict[str, torch.Tensor] = {}
        missing: list[str] = []
        for prompt in dict.fromkeys(prompts):  # distinct prompts, in order
            embedding = self._cache.get(prompt)
            if embedding is None:
                missing.append(prompt)
            else:
                found[prompt] = embedding

        if missing:
            for prompt, embedding in zip(missing, self._encode(missing), strict=True):
                found[prompt] = embedding
                self._cache.put(prompt, embedding)
        return [found[prompt] for prompt in prompts]

    def _encode(self, prompts: list[str]) -> list[torch.Tensor]:
        """Weighted (chunks * 77, hidden) embeddings, all prompts' chunks in one encoder batch."""
        tokenized = [self._tokenize(prompt) for prompt in prompts]
        ids = torch.cat([chunk_ids for chunk_ids, _ in tokenized])
        weights = torch.cat([chunk_weights for _, chunk_weights in tokenized])
        device = self.text_encoder.device

        hidden = self._run_encoder(ids.to(device))  # (total chunks, 77, hidden)
        if (weights != 1).any():
            hidden = self._apply_weights(hidden, weights.to(device))

        chunk_counts = [chunk_ids.shape[0] for chunk_ids, _ in tokenized]
        return [part.flatten(0, 1) for part in hidden.split(chunk_counts)]

    def _apply_weights(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(chunks, 77, hidden) states and (chunks, 77) weights -> e + w * (z - e), see above."""
        weights = weights[..., None]
        # In float32, so that bf16/fp16 encoders round once (at the end) rather than at each step.
        empty = self._encode_empty_chunk().float()
        weighted = (empty + weights * (hidden.float() - empty)).to(hidden.dtype)
        # Rows of weight 1 keep the encoder's exact output instead of a rounded round trip.
        return torch.where(weights == 1, hidden, weighted)

    def _tokenize(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (chunks, 77) and their weights (chunks, 77) in float32; chunks >= 1."""
        runs = parse_weighted_prompt(prompt)
        run_ids = (
            self.tokenizer(
                [text for text, _ in runs], add_special_tokens=False, verbose=False
            ).input_ids
            if runs
            else []
        )
        ids = [token for tokens in run_ids for token in tokens]
        weights = [
            weight for tokens, (_, weight) in zip(run_ids, runs, strict=True) for _ in tokens
        ]

        bos, eos, pad = (
            self.tokenizer.bos_token_id,
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
        )
        content = self.chunk_length - 2
        chunk_ids: list[list[int]] = []
        chunk_weights: list[list[float]] = []
        for start in range(0, max(1, math.ceil(len(ids) / content)) * content, content):
            body = ids[start : start + content]
            padding = content - len(body)
            chunk_ids.append([bos, *body, eos] + [pad] * padding)
            chunk_weights.append([1.0, *weights[start : start + content], 1.0] + [1.0] * padding)
        return torch.tensor(chunk_ids), torch.tensor(chunk_weights, dtype=torch.float32)

    def _encode_empty_chunk(self) -> torch.Tensor:
        """(77, hidden) encoding of ``BOS, EOS, pad...``: the weighting baseline and the padding."""
        if self._empty_chunk is None:
            ids = self._tokenize("")[0].to(self.text_encoder.device)
            self._empty_chunk = self._run_encoder(ids)[0]
        return self._empty_chunk

    def _run_encoder(self, ids: torch.Tensor) -> torch.Tensor:
        """(chunks, 77) ids -> (chunks, 77, hidden) last hidden states, as Stable Diffusion 1.x."""
        return self.text_encoder(ids).last_hidden_state

    def _invalidate_if_encoder_changed(self) -> None:
        encoder = self.text_encoder
        # data_ptr changes when a parameter gets new storage (.to(), assigning .data); the version
        # counter when it is modified in place (load_state_dict, copy_, fused LoRA).
        key = (
            id(encoder),
            encoder.device,
            encoder.dtype,
            tuple(
                # Inference-mode tensors have no version counter (and cannot be edited in place).
                (param.data_ptr(), 0 if param.is_inference() else param._version)
                for param in encoder.parameters()
            ),
        )
        if key != self._cache_key:
            self.clear_cache()
            self._cache_key = key
