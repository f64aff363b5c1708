"""DeepCache: UNet feature caching across diffusion steps (Ma, Fang and Wang, CVPR 2024).

Between neighbouring diffusion steps the deep, low-resolution features of a UNet change little,
while the shallow, full-resolution ones carry the detail that does change. DeepCache runs the
whole UNet on every interval-th step and keeps the hidden state that enters its last few up
layers; on the steps in between it runs only the shallow branch: the input convolution, the first
down layers (whose outputs are the skip connections those up layers read) and the last up layers,
fed the kept hidden state in place of everything deeper. No training; the saving grows with the
interval, and so does the drift from the exact output.

The UNet is diffusers' UNet2DConditionModel in Stable Diffusion v1's layout (resnet and
cross-attention down and up blocks). Its layers are run here one by one, in the order and with the
arguments its own forward() uses, so a full step is exactly what calling the UNet gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn

from riffusion.errors import RiffusionError

_DOWN_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D"}
_UP_BLOCKS = {"CrossAttnUpBlock2D", "UpBlock2D"}


@dataclass(frozen=True)
class _Layer:
    """A resnet and, in cross-attention blocks, the transformer after it; a down layer's output
    is a skip connection, an up layer first concatenates the skip it reads to its input. upsampler
    is the block's upsampler, run after the block's last up layer."""

    resnet: nn.Module
    attention: nn.Module | None
    upsampler: nn.Module | None = None


@dataclass(frozen=True)
class _Downsampler:
    """A down block's downsampler; its output is a skip connection too."""

    module: nn.Module


@dataclass
class _Context:
    """What every layer of one UNet call reads: the time embedding, the text embeddings and the
    cross-attention bias (rows, 1, tokens) or None."""

    embedding: torch.Tensor
    text: torch.Tensor
    text_bias: torch.Tensor | None


class DeepCacheUNet:
    """One diffusion run of unet with DeepCache. Make one per run: it holds that run's cache.

    Args:
        unet: a Stable Diffusion v1-layout UNet2DConditionModel.
        interval: steps 0, interval, 2 * interval, ... run the whole UNet; the others run the
            shallow branch. 1 runs the whole UNet on every step (no caching).
        shallow_layers: up layers the shallow branch runs, counted from the output; it runs as
            many skip connections' worth of down path (the input convolution's, then the down
            layers'). 1 is the shallowest branch (DeepCache's branch 0): the input convolution and
            the last up layer.

    Raises:
        RiffusionError: for a UNet of another layout, or settings out of range.
    """

    def __init__(self, unet: UNet2DConditionModel, interval: int, shallow_layers: int) -> None:
        self.unet = unet
        self.down, self.up = _layers(unet)
        if interval < 1:
            raise RiffusionError(f"the DeepCache interval must be at least 1, got {interval}")
        if not 1 <= shallow_layers < len(self.up):
            raise RiffusionError(
                f"DeepCache shallow layers must be 1 to {len(self.up) - 1}, got {shallow_layers}"
            )
        self.interval = interval
        self.shallow_layers = shallow_layers
        self._cache: torch.Tensor | None = None

    def is_full_step(self, step: int) -> bool:
        """Whether step (0 for the first of the run) runs the whole UNet."""
        return step % self.interval == 0 or self._cache is None

    def keep_rows(self, rows: Sequence[int]) -> None:
        """Keep the cache of these batch rows only, in this order: for when some members of a
        batch stop before the others."""
        if self._cache is not None:
            index = torch.tensor(list(rows), dtype=torch.long, device=self._cache.device)
            self._cache = self._cache.index_select(0, index)

    def __call__(
        self,
        step: int,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The UNet's output (rows, channels, h, w) for step, as unet(...).sample takes them:
        the whole UNet on full steps (exactly unet's output), the shallow branch otherwise."""
        context = self._context(sample, timestep, encoder_hidden_states, encoder_attention_mask)
        hidden = self.unet.conv_in(sample)
        skips = [hidden]
        full = self.is_full_step(step)
        down = self.down if full else self.down[: self.shallow_layers - 1]
        for unit in down:
            hidden = _run_down(unit, hidden, context)
            skips.append(hidden)
        first_cached = len(self.up) - self.shallow_layers
        if full:
            hidden = self._mid(hidden, context)
            up = self.up
        else:
            assert self._cache is not None
            hidden = self._cache
            up = self.up[first_cached:]
        upsample_size = _upsample_size(self.unet, sample)
        for offset, layer in enumerate(up):
            if full and offset == first_cached:
                self._cache = hidden
            skip = skips.pop()
            size = skips[-1].shape[2:] if upsample_size and skips else None
            hidden = _run_up(layer, hidden, skip, context, size)
        return self._out(hidden)

    # --- The parts around the layers, as UNet2DConditionModel.forward runs them ---------------

    def _context(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
    ) -> _Context:
        unet = self.unet
        text_bias = None
        if encoder_attention_mask is not None:
            # 1 = attend becomes a bias of 0, 0 = padding a large negative one.
            text_bias = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if unet.config["center_input_sample"]:
            sample = 2 * sample - 1.0
        embedding = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep))
        if unet.time_embed_act is not None:
            embedding = unet.time_embed_act(embedding)
        text = unet.process_encoder_hidden_states(
            encoder_hidden_states=encoder_hidden_states, added_cond_kwargs={}
        )
        return _Context(embedding, text, text_bias)

    def _mid(self, hidden: torch.Tensor, context: _Context) -> torch.Tensor:
        mid = self.unet.mid_block
        if mid is None:
            return hidden
        if getattr(mid, "has_cross_attention", False):
            result: torch.Tensor = mid(
                hidden,
                context.embedding,
                encoder_hidden_states=context.text,
                attention_mask=None,
                cross_attention_kwargs=None,
                encoder_attention_mask=context.text_bias,
            )
            return result
        result = mid(hidden, context.embedding)
        return result

    def _out(self, hidden: torch.Tensor) -> torch.Tensor:
        unet = self.unet
        if unet.conv_norm_out is not None:
            hidden = unet.conv_act(unet.conv_norm_out(hidden))
        result: torch.Tensor = unet.conv_out(hidden)
        return result


def _run_attention(attention: nn.Module, hidden: torch.Tensor, context: _Context) -> torch.Tensor:
    result: torch.Tensor = attention(
        hidden,
        encoder_hidden_states=context.text,
        cross_attention_kwargs=None,
        attention_mask=None,
        encoder_attention_mask=context.text_bias,
        return_dict=False,
    )[0]
    return result


def _run_down(unit: _Layer | _Downsampler, hidden: torch.Tensor, context: _Context) -> torch.Tensor:
    if isinstance(unit, _Downsampler):
        result: torch.Tensor = unit.module(hidden)
        return result
    hidden = unit.resnet(hidden, context.embedding)
    if unit.attention is not None:
        hidden = _run_attention(unit.attention, hidden, context)
    return hidden


def _run_up(
    layer: _Layer,
    hidden: torch.Tensor,
    skip: torch.Tensor,
    context: _Context,
    upsample_size: torch.Size | None,
) -> torch.Tensor:
    hidden = layer.resnet(torch.cat([hidden, skip], dim=1), context.embedding)
    if layer.attention is not None:
        hidden = _run_attention(layer.attention, hidden, context)
    if layer.upsampler is not None:
        hidden = layer.upsampler(hidden, upsample_size)
    return hidden


def _upsample_size(unet: UNet2DConditionModel, sample: torch.Tensor) -> bool:
    """Whether upsamplers must be told their output size: when the latent sides are not
    multiples of the UNet's total upsampling, as UNet2DConditionModel.forward decides."""
    factor = 2**unet.num_upsamplers
    return any(side % factor for side in sample.shape[-2:])


def _layers(unet: UNet2DConditionModel) -> tuple[list[_Layer | _Downsampler], list[_Layer]]:
    """unet's down units (each makes one skip connection) and up layers (each reads one), in
    the order they run. Refuses UNets this module cannot run layer by layer."""
    unsupported = [
        name
        for name, value in (
            ("class embeddings", unet.class_embedding),
            ("additional embeddings", unet.config["addition_embed_type"]),
        )
        if value is not None
    ]
    down: list[_Layer | _Downsampler] = []
    for block in unet.down_blocks:
        if type(block).__name__ not in _DOWN_BLOCKS:
            unsupported.append(type(block).__name__)
            continue
        down += _paired_layers(block)
        down += [_Downsampler(module) for module in _submodules(block, "downsamplers")]
    up: list[_Layer] = []
    for block in unet.up_blocks:
        if type(block).__name__ not in _UP_BLOCKS:
            unsupported.append(type(block).__name__)
            continue
        if all(getattr(block, name, None) for name in ("s1", "s2", "b1", "b2")):
            unsupported.append("FreeU")
        layers = _paired_layers(block)
        upsamplers = _submodules(block, "upsamplers")
        if len(upsamplers) > 1:
            unsupported.append("several upsamplers per block")
        elif upsamplers:
            last = layers[-1]
            layers[-1] = _Layer(last.resnet, last.attention, upsamplers[0])
        up += layers
    if not unsupported and len(up) != len(down) + 1:
        unsupported.append("skip connections that do not pair up")
    if unsupported:
        raise RiffusionError(
            "DeepCache runs Stable Diffusion v1-layout UNets; this one has "
            + ", ".join(dict.fromkeys(str(item) for item in unsupported))
        )
    return down, up


def _submodules(block: nn.Module, name: str) -> list[nn.Module]:
    """The modules of block's ModuleList called name; none where it has none."""
    modules = getattr(block, name, None)
    return list(modules) if isinstance(modules, nn.ModuleList) else []


def _paired_layers(block: nn.Module) -> list[_Layer]:
    """block's resnets, each with the transformer that follows it in cross-attention blocks."""
    resnets = _submodules(block, "resnets")
    attentions: list[nn.Module | None] = list(_submodules(block, "attentions"))
    if not attentions:
        attentions = [None] * len(resnets)
    return [
        _Layer(resnet, attention) for resnet, attention in zip(resnets, attentions, strict=True)
    ]
