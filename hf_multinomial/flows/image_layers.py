# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Invertible layers on images `(B, C, H, W)` and the flows built from them, for the segmentation-map models of the
paper's Section 6.2 / Appendix B.2:

- [`squeeze2d`] / [`unsqueeze2d`]: space-to-depth by a factor 2 (volume preserving);
- [`ChannelMixing`] (from `transforms`) with `dim=1`: the learned C x C 1 x 1 convolution (Glow), log-det
  H * W * log|det W|;
- [`DenseNet`]: the conditioner of the coupling layers, the context network of q(v | x) and the VAE decoder;
- [`AffineCoupling`]: y_b = x_b * exp(s) + t with (s, t) = DenseNet([x_a, context]);
- [`MultiScaleFlow`]: the density model p(v): levels of subflows (1 x 1 mixing + affine coupling) separated
  by squeeze layers, with half of the channels factored out after every level but the last;
- [`ConditionalFlow`]: q(u | x): a conditional Gaussian base and one level of conditional subflows, both driven by
  a DenseNet representation of x.

Every invertible layer has `forward(x, context=None) -> (y, log_det)` (log_det of shape `(B,)`, the log |det dy/dx|
summed over everything but the batch) and `inverse(y, context=None) -> x`.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .gaussian import gaussian_log_prob, sample_gaussian
from .transforms import ChannelMixing


def _sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def squeeze2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """`(B, C, H, W)` -> `(B, C * factor**2, H / factor, W / factor)`: each factor x factor patch becomes channels."""
    b, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(f"squeeze2d needs height and width divisible by {factor}, got {h} x {w}")
    x = x.view(b, c, h // factor, factor, w // factor, factor)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * factor * factor, h // factor, w // factor)


def unsqueeze2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """The inverse of [`squeeze2d`]."""
    b, c, h, w = x.shape
    if c % (factor * factor):
        raise ValueError(f"unsqueeze2d needs channels divisible by {factor * factor}, got {c}")
    x = x.view(b, c // (factor * factor), factor, factor, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c // (factor * factor), h * factor, w * factor)


class Squeeze2d(nn.Module):
    """[`squeeze2d`] as an invertible layer (its log-det is 0: it only reorders the values)."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor

    def forward(self, x, context=None):
        return squeeze2d(x, self.factor), x.new_zeros(x.shape[0])

    def inverse(self, y, context=None):
        return unsqueeze2d(y, self.factor)


class DenseBlock(nn.Module):
    """`depth` 3 x 3 convolutions, each seeing the concatenation of the block's input and all earlier outputs
    (Huang et al., 2017), then a 1 x 1 convolution back to `channels`."""

    def __init__(self, channels: int, depth: int, growth: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(channels + i * growth, growth, 3, padding=1) for i in range(depth))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Conv2d(channels + depth * growth, channels, 1)

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(F.relu(self.dropout(layer(torch.cat(features, dim=1)))))
        return self.out(torch.cat(features, dim=1))


class DenseNet(nn.Module):
    """
    A DenseNet mapping `(B, in_channels, H, W)` to `(B, out_channels, H, W)`: a 3 x 3 input convolution to
    `mid_channels`, `num_blocks` residual [`DenseBlock`]s, and a 1 x 1 output convolution.

    Args:
        in_channels, out_channels (`int`): channels of the input and of the output.
        mid_channels (`int`): width of the blocks' input and output.
        depth (`int`): convolutions per block.
        growth (`int`): channels each of them adds.
        num_blocks (`int`): dense blocks.
        dropout (`float`): dropout after each convolution of the blocks.
        zero_init (`bool`): start the output layer at zero (so a coupling layer starts at the identity).
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int = 64, depth: int = 4, growth: int = 32,
                 num_blocks: int = 1, dropout: float = 0.0, zero_init: bool = True):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.blocks = nn.ModuleList(DenseBlock(mid_channels, depth, growth, dropout) for _ in range(num_blocks))
        self.out = nn.Conv2d(mid_channels, out_channels, 1)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.out(F.relu(h))


class AffineCoupling(nn.Module):
    """
    Affine coupling (Dinh et al., 2017): x = [x_a, x_b] along channels (x_a the first C // 2), y_a = x_a and
    y_b = x_b * exp(s) + t with (s_raw, t) = DenseNet([x_a, context]) and s = 2 tanh(s_raw / 2) (a soft clamp of
    the log-scale to (-2, 2), for stability). The DenseNet's output layer starts at zero: the layer starts as the
    identity.

    Args:
        num_channels (`int`): C (at least 2).
        context_channels (`int`): channels of the context concatenated to x_a (0: none).
        mid_channels, depth, growth, num_blocks, dropout: the [`DenseNet`]'s.
    """

    def __init__(self, num_channels: int, context_channels: int = 0, mid_channels: int = 64, depth: int = 4,
                 growth: int = 32, num_blocks: int = 1, dropout: float = 0.0):
        super().__init__()
        if num_channels < 2:
            raise ValueError(f"AffineCoupling needs at least 2 channels, got {num_channels}")
        self.split = num_channels // 2
        out = num_channels - self.split
        self.net = DenseNet(self.split + context_channels, 2 * out, mid_channels, depth, growth, num_blocks, dropout)

    def _params(self, x_a, context):
        h = self.net(x_a if context is None else torch.cat([x_a, context], dim=1))
        s_raw, t = h.chunk(2, dim=1)
        return 2 * torch.tanh(s_raw / 2), t

    def forward(self, x, context=None):
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        s, t = self._params(x_a, context)
        return torch.cat([x_a, x_b * torch.exp(s) + t], dim=1), _sum_except_batch(s)

    def inverse(self, y, context=None):
        y_a, y_b = y[:, : self.split], y[:, self.split :]
        s, t = self._params(y_a, context)
        return torch.cat([y_a, (y_b - t) * torch.exp(-s)], dim=1)


class Subflow(nn.Module):
    """One subflow of the paper's B.2: a 1 x 1 [`ChannelMixing`] then an [`AffineCoupling`]."""

    def __init__(self, num_channels: int, context_channels: int = 0, **dense_kwargs):
        super().__init__()
        self.mixing = ChannelMixing(num_channels, dim=1)
        self.coupling = AffineCoupling(num_channels, context_channels, **dense_kwargs)

    def forward(self, x, context=None):
        x, log_det_mixing = self.mixing(x)
        y, log_det_coupling = self.coupling(x, context)
        return y, log_det_mixing + log_det_coupling

    def inverse(self, y, context=None):
        return self.mixing.inverse(self.coupling.inverse(y, context))


class SplitPrior(nn.Module):
    """The density of the factored-out half z_2 given the kept half z_1: N(z_2; mean(z_1), exp(log_scale(z_1))^2)
    with (mean, log_scale) from a zero-initialised 3 x 3 convolution (so it starts as a standard normal)."""

    def __init__(self, kept_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(kept_channels, 2 * out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, z1):
        return self.conv(z1).chunk(2, dim=1)

    def log_prob(self, z2, z1):
        mean, log_scale = self(z1)
        return _sum_except_batch(gaussian_log_prob(z2, mean, log_scale))

    def sample(self, z1, generator=None):
        mean, log_scale = self(z1)
        return sample_gaussian(mean, log_scale, generator)[0]


class MultiScaleFlow(nn.Module):
    """
    The density model p(v) of v `(B, C, H, W)`: `num_levels` levels, each a [`Squeeze2d`] then `num_steps`
    [`Subflow`]s; after every level but the last, half of the channels are factored out to a [`SplitPrior`]
    (with `factor_out`), the rest go on; the last level's output has a standard normal density.

    Args:
        in_channels (`int`): C.
        height, width (`int`): H and W, divisible by 2**num_levels.
        num_levels (`int`): levels (the paper: 4).
        num_steps (`int`): subflows per level (the paper: 10).
        factor_out (`bool`): factor out half the channels after each level but the last (multi-scale, as Glow).
        **dense_kwargs: the coupling DenseNets' `mid_channels`, `depth`, `growth`, `num_blocks`, `dropout`.
    """

    def __init__(self, in_channels: int, height: int, width: int, num_levels: int = 4, num_steps: int = 10,
                 factor_out: bool = True, **dense_kwargs):
        super().__init__()
        scale = 2**num_levels
        if height % scale or width % scale:
            raise ValueError(
                f"{num_levels} squeeze levels need height and width divisible by {scale}, got {height} x {width}"
            )
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        channels, h, w = in_channels, height, width
        for level in range(num_levels):
            channels, h, w = channels * 4, h // 2, w // 2
            self.levels.append(nn.ModuleList(Subflow(channels, **dense_kwargs) for _ in range(num_steps)))
            if factor_out and level < num_levels - 1:
                kept = channels // 2
                self.priors.append(SplitPrior(kept, channels - kept))
                channels = kept
        self.base_shape = (channels, h, w)
        self.event_shape = (in_channels, height, width)

    def forward(self, v):
        """v -> (the last level's z, log p(v) - log N(z)): the log-dets plus the factored-out log-densities."""
        log_p = v.new_zeros(v.shape[0])
        h = v
        for index, steps in enumerate(self.levels):
            h = squeeze2d(h)
            for step in steps:
                h, log_det = step(h)
                log_p = log_p + log_det
            if index < len(self.priors):
                kept = h.shape[1] // 2
                h, z2 = h[:, :kept], h[:, kept:]
                log_p = log_p + self.priors[index].log_prob(z2, h)
        return h, log_p

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """log p(v) in nats, shape `(B,)`."""
        z, log_p = self(v)
        return log_p + _sum_except_batch(gaussian_log_prob(z))

    def sample(self, num_samples: int, generator: Optional[torch.Generator] = None, device=None, dtype=None):
        """v ~ p(v), shape `(num_samples, C, H, W)`."""
        param = next(self.parameters())
        device, dtype = device or param.device, dtype or param.dtype
        h = torch.randn((num_samples, *self.base_shape), generator=generator, device=device, dtype=dtype)
        for index in reversed(range(len(self.levels))):
            if index < len(self.priors):
                h = torch.cat([h, self.priors[index].sample(h, generator)], dim=1)
            for step in reversed(self.levels[index]):
                h = step.inverse(h)
            h = unsqueeze2d(h)
        return h


class ConditionalFlow(nn.Module):
    """
    q(u | x) for u `(B, C, H, W)` given a condition image x `(B, C_x, H, W)` (e.g. a one-hot map): a DenseNet turns
    x into a representation of `context_channels`; a 1 x 1 convolution of it gives the mean and log-scale of a
    Gaussian base eps; `num_steps` [`Subflow`]s, applied after a squeeze (so that a single channel can be coupled)
    and conditioned on the squeezed representation, turn eps into u.

    Args:
        channels (`int`): C.
        condition_channels (`int`): C_x.
        context_channels (`int`): channels of the representation of x.
        num_steps (`int`): subflows (the paper: 8).
        **dense_kwargs: `mid_channels`, `depth`, `growth`, `num_blocks`, `dropout` of the DenseNets.
    """

    def __init__(self, channels: int, condition_channels: int, context_channels: int = 16, num_steps: int = 8,
                 **dense_kwargs):
        super().__init__()
        self.channels = channels
        self.context_net = DenseNet(condition_channels, context_channels, zero_init=False, **dense_kwargs)
        self.base = nn.Conv2d(context_channels, 2 * channels, 1)
        nn.init.zeros_(self.base.weight)
        nn.init.zeros_(self.base.bias)
        self.steps = nn.ModuleList(
            Subflow(4 * channels, 4 * context_channels, **dense_kwargs) for _ in range(num_steps)
        )

    def forward(self, noise: torch.Tensor, condition: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """u from standard normal `noise` `(B, C, H, W)` given x, and log q(u | x); shapes `(B, C, H, W)`, `(B,)`."""
        context = self.context_net(condition)
        mean, log_scale = self.base(context).chunk(2, dim=1)
        u = mean + torch.exp(log_scale) * noise
        log_q = _sum_except_batch(gaussian_log_prob(noise)) - _sum_except_batch(log_scale)
        h, context = squeeze2d(u), squeeze2d(context)
        for step in self.steps:
            h, log_det = step(h, context)
            log_q = log_q - log_det
        return unsqueeze2d(h), log_q

    def sample(self, condition: torch.Tensor, generator: Optional[torch.Generator] = None):
        """u ~ q(u | x) and log q(u | x), shapes `(B, C, H, W)` and `(B,)`."""
        b, _, h, w = condition.shape
        noise = torch.randn((b, self.channels, h, w), generator=generator, device=condition.device,
                            dtype=condition.dtype)
        return self(noise, condition)


__all__: List[str] = [
    "AffineCoupling",
    "ConditionalFlow",
    "DenseBlock",
    "DenseNet",
    "MultiScaleFlow",
    "SplitPrior",
    "Squeeze2d",
    "Subflow",
    "squeeze2d",
    "unsqueeze2d",
]
