# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Configuration of the segmentation-map flows and VAE (Hoogeboom et al., 2021, Section 6.2 and Appendix B.2)."""

from transformers import PreTrainedConfig

from .configuration_argmax_flow import check_argmax_settings, check_count, check_dropout


class SegmentationFlowConfig(PreTrainedConfig):
    r"""
    Configuration of a [`SegmentationFlowModel`]: a latent-variable model of `(height, width)` maps of
    `num_classes` classes whose bound log P(x) >= E_q[log p(v) + log P(x | v) - log q(v | x)] is trained and
    reported. All rows of the paper's Table 3 share the density model p(v) (a multi-scale flow of 1 x 1 mixings and
    affine couplings with DenseNet conditioners) and the conditional flow q(v | x); a row is an `inverse`, or
    `vae=True`.

    Args:
        num_classes (`int`): K, the classes of a pixel (8 Cityscapes categories).
        height, width (`int`): map size, divisible by 2**num_levels (32 x 64 in the paper); `sample_shape` is
            `(height, width)`.
        inverse (`str`): q(v | x), as in [`ArgmaxFlowConfig`] (the argmax and dequantization rows of Table 3):
            - `"uniform_dequantization"`: v = x + u, u ~ U(0, 1)^(H x W), of the class index (one channel); the
              generative direction rounds down ("Round / Unif.").
            - `"variational_dequantization"`: v = x + sigmoid(u) with u ~ q(u | x) the conditional flow
              ("Round / Var.", Flow++).
            - `"thresholding"`: argmax flow, u ~ q(u | x) (K channels) then softplus thresholding so that
              argmax(v) = x.
            - `"gumbel"`: argmax flow, v drawn from Gumbels of per-pixel logits (a DenseNet of x) conditioned on
              their argmax being x.
            - `"gumbel_thresholding"`: argmax flow, u ~ q(u | x) then the truncated-Gumbel thresholding.
            For the thresholding and variational rows the conditional flow q(u | x) replaces the inverse's Gaussian.
        vae (`bool`): the VAE row of Table 3 instead: prior p(z) the density model, encoder q(z | x) the conditional
            flow, and decoder p(x | z) a DenseNet giving per-pixel categorical logits; there is no argmax, so
            `inverse` and `cartesian_base` are unused.
        cartesian_base (`int`, *optional*): argmax and dequantization rows: encode each class as d digits in base
            M with M**d >= K (then v has d * M channels, or d for M = 2); `None`: one digit in base K.
        num_levels (`int`): levels of the density model, each a squeeze then `num_steps` subflows (paper: 4).
        num_steps (`int`): subflows per level (paper: 10).
        factor_out (`bool`): factor out half of the channels after each level but the last (multi-scale).
        encoder_steps (`int`): subflows of q(v | x) (paper: 8).
        context_channels (`int`): channels of the DenseNet representation of x concatenated to q's coupling inputs.
        latent_channels (`int`): the VAE's z channels (at the map's resolution).
        mid_channels, depth, growth, num_blocks (`int`): every DenseNet's width, convolutions per dense block,
            channels added by each of them, and dense blocks.
        dropout (`float`): dropout inside the DenseNets.
    """

    model_type = "segmentation_flow"

    def __init__(
        self,
        num_classes: int = 8,
        height: int = 32,
        width: int = 64,
        inverse: str = "thresholding",
        vae: bool = False,
        cartesian_base=None,
        num_levels: int = 4,
        num_steps: int = 10,
        factor_out: bool = True,
        encoder_steps: int = 8,
        context_channels: int = 32,
        latent_channels: int = 8,
        mid_channels: int = 64,
        depth: int = 4,
        growth: int = 32,
        num_blocks: int = 1,
        dropout: float = 0.0,
        **kwargs,
    ):
        check_argmax_settings(num_classes, inverse, cartesian_base)
        # Every size: 0 or a negative value is never "none" (encoder_steps=-1 or num_blocks=0 were accepted).
        for name, value in (("height", height), ("width", width), ("num_levels", num_levels),
                            ("num_steps", num_steps), ("encoder_steps", encoder_steps),
                            ("context_channels", context_channels), ("latent_channels", latent_channels),
                            ("mid_channels", mid_channels), ("depth", depth), ("growth", growth),
                            ("num_blocks", num_blocks)):
            check_count(name, value)
        check_dropout("dropout", dropout)
        scale = 2**num_levels
        if height % scale or width % scale:
            raise ValueError(
                f"height and width must be divisible by 2**num_levels = {scale}, got {height} x {width}"
            )
        self.num_classes = num_classes
        self.height = height
        self.width = width
        self.inverse = inverse
        self.vae = vae
        self.cartesian_base = cartesian_base
        self.num_levels = num_levels
        self.num_steps = num_steps
        self.factor_out = factor_out
        self.encoder_steps = encoder_steps
        self.context_channels = context_channels
        self.latent_channels = latent_channels
        self.mid_channels = mid_channels
        self.depth = depth
        self.growth = growth
        self.num_blocks = num_blocks
        self.dropout = dropout
        super().__init__(**kwargs)

    @property
    def sample_shape(self):
        """The shape of one example, `(height, width)`."""
        return (self.height, self.width)


__all__ = ["SegmentationFlowConfig"]
