"""Text prompts -> CLIP text embeddings for the UNet's cross-attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import CLIPTextModel, CLIPTokenizer


class PromptEmbedder:
    """Encodes prompts with a CLIP tokenizer and text encoder.

    embed() returns one row per prompt, all padded to the same token length so that rows can be
    batched (positive with negative for guidance) and interpolated (start with end prompt).
    """

    def __init__(self, tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """(len(prompts), tokens, hidden) embeddings on the text encoder's device and dtype."""
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(self.text_encoder.device))[0]
