"""U-Net denoiser for categorical images (segmentation maps such as Cityscapes).

The model maps a batch of class-index maps ``x_t`` of shape `(batch, height, width)` and a diffusion timestep ``t``
to per-pixel logits over the classes, `(batch, num_classes, height, width)`. Like the text transformer it knows
nothing about the diffusion process: the scheduler decides what the logits mean.

Architecture: the classic DDPM U-Net (Ho et al. 2020), which is also what Hoogeboom et al. 2021 ("Argmax Flows and
Multinomial Diffusion") use for Cityscapes, with a learned class embedding in place of the image input. Residual
blocks (GroupNorm, SiLU, 3x3 conv) receive the timestep embedding, added after their first convolution; levels of
decreasing resolution are joined by strided-conv downsampling and nearest-neighbour + conv upsampling, with a skip
connection from every down-path activation to the matching up-path block; self-attention sits at the chosen low
resolutions and in the middle block.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from torch import nn

from .input_checks import check_config_int, check_config_number, check_inputs
from .loading import CheckedLoadingMixin


@dataclass
class SegmentationUNetOutput(BaseOutput):
    """
    Output of [`SegmentationUNet`].

    Args:
        sample (`torch.Tensor` of shape `(batch_size, num_classes, height, width)`):
            Unnormalized logits over the classes at every pixel, class axis at dim 1.
    """

    sample: torch.Tensor


def group_count(channels: int, num_groups: int) -> int:
    """Largest number of GroupNorm groups that is `<= num_groups` and divides `channels`."""
    for groups in range(min(num_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def _norm(channels: int, num_groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(group_count(channels, num_groups), channels, eps=1e-6)


class SegmentationResnetBlock(nn.Module):
    """
    `x + conv(dropout(SiLU(GN(conv(SiLU(GN(x))) + W SiLU(temb)))))`, with a 1x1 conv on the shortcut when the channel
    count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float, num_groups: int):
        super().__init__()
        self.norm1 = _norm(in_channels, num_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = _norm(out_channels, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(hidden_states)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(hidden_states) + h


class SegmentationAttentionBlock(nn.Module):
    """Residual multi-head self-attention over all pixels of a feature map: `x + proj(attn(GN(x)))`."""

    def __init__(self, channels: int, num_heads: int, num_groups: int):
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"attention channels {channels} must be divisible by attention_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = _norm(channels, num_groups)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.to_out = nn.Conv2d(channels, channels, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch_size, channels, height, width = hidden_states.shape
        head_dim = channels // self.num_heads
        qkv = self.to_qkv(self.norm(hidden_states)).view(batch_size, 3, self.num_heads, head_dim, height * width)
        query, key, value = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, head_dim)
        out = F.scaled_dot_product_attention(query, key, value)
        out = out.transpose(-1, -2).reshape(batch_size, channels, height, width)
        return hidden_states + self.to_out(out)


class Downsample(nn.Module):
    """3x3 convolution with stride 2 (halves height and width)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(hidden_states)


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))


class SegmentationUNetLevel(nn.Module):
    """One resolution of the U-Net: residual blocks, each optionally followed by attention, then a resampler."""

    def __init__(self, resnets: list, attentions: list, resample: nn.Module):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.resample = resample


class SegmentationUNet(CheckedLoadingMixin, ModelMixin, ConfigMixin):
    """
    U-Net denoiser for categorical images: class-index maps and a timestep in, per-pixel logits out.

    Pipeline: class embedding (`nn.Embedding`, moved to channels-first) -> 3x3 conv to `base_channels` -> down path
    (per level: `num_res_blocks` residual blocks, attention after each if the level is an attention resolution, then a
    stride-2 conv except at the last level) -> middle (residual block, attention, residual block) -> up path (per level,
    deepest first: `num_res_blocks + 1` residual blocks, each fed the concatenation of the stream and one stored
    down-path activation, attention as on the way down, then x2 upsampling except at the top level) -> GroupNorm,
    SiLU, 3x3 conv to `num_classes` logits. The timestep goes through a sinusoidal embedding and a two-layer SiLU MLP
    (width `4 * base_channels`) and is added inside every residual block.

    Inputs of any height and width divisible by `2 ** (len(channel_multipliers) - 1)` are accepted; `sample_size` is
    the size the model is trained for and the default size a pipeline generates.

    Args:
        num_classes (`int`, defaults to 8):
            Number of categories K; inputs are integers in `[0, num_classes)` (8 Cityscapes categories).
        sample_size (`int` or `tuple[int, int]`, defaults to `(32, 64)`):
            `(height, width)` of the maps (an int means square). Stored as a tuple; must be divisible by the total
            downsampling factor.
        base_channels (`int`, defaults to 64):
            Channels at the top level; level `i` has `base_channels * channel_multipliers[i]` channels.
        channel_multipliers (`tuple[int, ...]`, defaults to `(1, 2, 4, 8)`):
            One entry per resolution level; each level after the first halves height and width.
        num_res_blocks (`int`, defaults to 2):
            Residual blocks per level on the down path (the up path has one more, as in DDPM).
        attention_resolutions (`tuple[int, ...]`, defaults to `(4,)`):
            Downsampling factors (relative to the input) of the levels that get self-attention after every residual
            block: factor `2 ** i` is level `i`. With the defaults on 32 x 64 maps that is the 8 x 16 level. Every
            factor must be one of the levels. The middle block (the lowest resolution) always has attention; pass
            `()` for attention there only.
        dropout (`float`, defaults to 0.1):
            Dropout inside every residual block (training mode only).
        num_groups (`int`, defaults to 32):
            GroupNorm groups; for a channel count it does not divide, the largest divisor of the channel count below
            it is used.
        class_embedding_dim (`int`, *optional*):
            Width of the class embedding; defaults to `base_channels`.
        attention_heads (`int`, defaults to 1):
            Heads of every attention block (1 as in DDPM); must divide the channel count of every attended level.
        num_train_timesteps (`int`, defaults to 4000):
            Number of diffusion steps T the model is trained for (4000 for Cityscapes in the paper). Not used by the
            forward pass; kept in the config so pipelines and training code can check that the scheduler matches.

    `from_pretrained` refuses a missing, unreadable or non-finite weights file and weights that do not match the
    config (see [`~hf_multinomial.models.loading.CheckedLoadingMixin`]).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["SegmentationResnetBlock", "SegmentationAttentionBlock"]

    @register_to_config
    def __init__(
        self,
        num_classes: int = 8,
        sample_size: int | tuple[int, int] = (32, 64),
        base_channels: int = 64,
        channel_multipliers: tuple[int, ...] = (1, 2, 4, 8),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (4,),
        dropout: float = 0.1,
        num_groups: int = 32,
        class_embedding_dim: int | None = None,
        attention_heads: int = 1,
        num_train_timesteps: int = 4000,
    ):
        super().__init__()
        check_config_int("num_classes", num_classes, minimum=2)
        for name, value in (("base_channels", base_channels), ("num_res_blocks", num_res_blocks),
                            ("num_groups", num_groups), ("attention_heads", attention_heads)):
            check_config_int(name, value)
        if not channel_multipliers or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1
                                              for m in channel_multipliers):
            raise ValueError(f"channel_multipliers={channel_multipliers!r} must be a non-empty list of positive ints")
        channel_multipliers = tuple(channel_multipliers)
        check_config_number("dropout", dropout, low=0.0, high=1.0, high_open=True)
        check_config_int("num_train_timesteps", num_train_timesteps)
        if class_embedding_dim is not None:
            check_config_int("class_embedding_dim", class_embedding_dim)
        pair = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
        pair = tuple(pair) if isinstance(pair, (list, tuple)) else ()
        if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair):
            raise ValueError(f"sample_size={sample_size!r} must be a positive int or a (height, width) pair of them")
        sample_size = pair
        factor = 2 ** (len(channel_multipliers) - 1)
        if sample_size[0] % factor or sample_size[1] % factor:
            raise ValueError(
                f"sample_size={sample_size} must be divisible by 2 ** (len(channel_multipliers) - 1) = {factor}"
            )
        if not all(isinstance(r, int) and not isinstance(r, bool) for r in attention_resolutions):
            raise ValueError(f"attention_resolutions={attention_resolutions!r} must hold integers")
        attention_resolutions = tuple(attention_resolutions)
        level_factors = [2**i for i in range(len(channel_multipliers))]
        for resolution in attention_resolutions:
            if resolution not in level_factors:
                raise ValueError(
                    f"attention_resolutions entry {resolution} is not a downsampling factor of this U-Net "
                    f"(levels have factors {level_factors})"
                )
        # JSON turns tuples into lists; store tuples so a loaded config equals the original.
        self.register_to_config(
            sample_size=sample_size,
            channel_multipliers=channel_multipliers,
            attention_resolutions=attention_resolutions,
        )

        embedding_dim = class_embedding_dim or base_channels
        temb_channels = 4 * base_channels
        channels = [base_channels * m for m in channel_multipliers]

        def resnet(c_in, c_out):
            return SegmentationResnetBlock(c_in, c_out, temb_channels, dropout, num_groups)

        def attention(c, level):
            if level_factors[level] in attention_resolutions:
                return SegmentationAttentionBlock(c, attention_heads, num_groups)
            return nn.Identity()

        # Submodule names must differ from config keys, otherwise ModelMixin.__getattr__ returns the config value.
        self.class_embedding = nn.Embedding(num_classes, embedding_dim)
        self.time_proj = Timesteps(base_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(base_channels, temb_channels)
        self.conv_in = nn.Conv2d(embedding_dim, base_channels, 3, padding=1)

        skip_channels = [base_channels]
        current = base_channels
        down_blocks = []
        for level, out_channels in enumerate(channels):
            resnets, attentions = [], []
            for _ in range(num_res_blocks):
                resnets.append(resnet(current, out_channels))
                attentions.append(attention(out_channels, level))
                current = out_channels
                skip_channels.append(current)
            is_last = level == len(channels) - 1
            resample = nn.Identity() if is_last else Downsample(current)
            down_blocks.append(SegmentationUNetLevel(resnets, attentions, resample))
            if not is_last:
                skip_channels.append(current)
        self.down_blocks = nn.ModuleList(down_blocks)

        self.mid_resnet1 = resnet(current, current)
        self.mid_attention = SegmentationAttentionBlock(current, attention_heads, num_groups)
        self.mid_resnet2 = resnet(current, current)

        up_blocks = []
        for level in reversed(range(len(channels))):
            out_channels = channels[level]
            resnets, attentions = [], []
            for _ in range(num_res_blocks + 1):
                resnets.append(resnet(current + skip_channels.pop(), out_channels))
                attentions.append(attention(out_channels, level))
                current = out_channels
            up_blocks.append(SegmentationUNetLevel(resnets, attentions, Upsample(current) if level else nn.Identity()))
        self.up_blocks = nn.ModuleList(up_blocks)
        assert not skip_channels

        self.norm_out = _norm(current, num_groups)
        self.conv_out = nn.Conv2d(current, num_classes, 3, padding=1)
        self.gradient_checkpointing = False

    def _check_inputs(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        timestep = check_inputs(
            sample, timestep, self.config.num_classes, self.config.num_train_timesteps, "batch, height, width"
        )
        factor = 2 ** (len(self.config.channel_multipliers) - 1)
        if sample.shape[1] % factor or sample.shape[2] % factor:
            raise ValueError(
                f"sample height and width must be divisible by {factor} (2 ** (len(channel_multipliers) - 1)), "
                f"got shape {tuple(sample.shape)}"
            )
        return timestep

    def _call(self, module: nn.Module, *args) -> torch.Tensor:
        if isinstance(module, nn.Identity):
            return args[0]
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)

    def forward(
        self, sample: torch.LongTensor, timestep: torch.Tensor | int, return_dict: bool = True
    ) -> SegmentationUNetOutput | tuple:
        """
        Args:
            sample (`torch.LongTensor` of shape `(batch_size, height, width)`):
                Class indices in `[0, num_classes)`; height and width divisible by
                `2 ** (len(channel_multipliers) - 1)`.
            timestep (`torch.Tensor` of shape `(batch_size,)`, 0-dim tensor or `int`):
                Diffusion timestep of each map, in `[0, num_train_timesteps)` (it may be fractional); a scalar is
                shared by the whole batch.
            return_dict (`bool`, defaults to `True`):
                Return a [`SegmentationUNetOutput`] instead of a plain tuple.

        Returns:
            [`SegmentationUNetOutput`] or `tuple`: logits of shape `(batch_size, num_classes, height, width)`.
        """
        timestep = self._check_inputs(sample, timestep)
        dtype = self.class_embedding.weight.dtype
        temb = self.time_embedding(self.time_proj(timestep).to(dtype))

        if sample.dtype not in (torch.int32, torch.int64):
            sample = sample.long()  # nn.Embedding takes int32/int64 indices only (e.g. not uint8 maps)
        hidden_states = self.class_embedding(sample).permute(0, 3, 1, 2).contiguous()  # (B, E, H, W)
        hidden_states = self.conv_in(hidden_states)
        skips = [hidden_states]
        for level in self.down_blocks:
            for resnet, attention in zip(level.resnets, level.attentions):
                hidden_states = self._call(resnet, hidden_states, temb)
                hidden_states = self._call(attention, hidden_states)
                skips.append(hidden_states)
            if not isinstance(level.resample, nn.Identity):
                hidden_states = level.resample(hidden_states)
                skips.append(hidden_states)

        hidden_states = self._call(self.mid_resnet1, hidden_states, temb)
        hidden_states = self._call(self.mid_attention, hidden_states)
        hidden_states = self._call(self.mid_resnet2, hidden_states, temb)

        for level in self.up_blocks:
            for resnet, attention in zip(level.resnets, level.attentions):
                hidden_states = torch.cat([hidden_states, skips.pop()], dim=1)
                hidden_states = self._call(resnet, hidden_states, temb)
                hidden_states = self._call(attention, hidden_states)
            hidden_states = level.resample(hidden_states)

        logits = self.conv_out(F.silu(self.norm_out(hidden_states)))

        if not return_dict:
            return (logits,)
        return SegmentationUNetOutput(sample=logits)
