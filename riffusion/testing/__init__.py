"""Fixtures for tests and benchmarks that need no network; nothing at runtime imports them.

- clip_tokenizer: write_clip_tokenizer(folder), CLIP's real BPE tokenizer in Hugging Face format.
- random_checkpoints: make_tiny_checkpoint(path, seed) and make_random_checkpoint(path, size,
  seed), random-weight models in riffusion-model-v1's diffusers layout.
- single_file_checkpoints: write_single_file_checkpoint(folder, path), a diffusers folder's
  weights as one original-layout .ckpt / .safetensors file.
- random_lora: make_tiny_lora(path, checkpoint, seed), random LoRA weights for a tiny checkpoint.
- join_metrics: how audible the joins of a long render are, and the naive joins to compare with
  (import it from its module: it needs scipy and the spectrogram code).
"""

from riffusion.testing.clip_tokenizer import CLIP_VOCAB_SIZE, write_clip_tokenizer
from riffusion.testing.random_checkpoints import make_random_checkpoint, make_tiny_checkpoint
from riffusion.testing.random_lora import make_tiny_lora
from riffusion.testing.single_file_checkpoints import write_single_file_checkpoint

__all__ = [
    "CLIP_VOCAB_SIZE",
    "make_random_checkpoint",
    "make_tiny_checkpoint",
    "make_tiny_lora",
    "write_clip_tokenizer",
    "write_single_file_checkpoint",
]
