# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Argmax flows, dequantization baselines and a VAE for segmentation maps (Hoogeboom et al., 2021, Section 6.2 and
Appendix B.2) as a transformers model: the rows of the paper's Cityscapes comparison (Table 3).
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .cartesian import CartesianEncoding
from .configuration_segmentation_flow import SegmentationFlowConfig
from .image_layers import ConditionalFlow, DenseNet, MultiScaleFlow
from .likelihood import FlowModelMixin
from .modeling_argmax_flow import CheckedFlowMixin, check_finite_draw
from .surjections import TransformedGaussianInverse, make_argmax_inverse


@dataclass
class SegmentationFlowOutput(ModelOutput):
    """
    Output of [`SegmentationFlowModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            The negative bound in nats per pixel, averaged over the batch: the training loss.
        log_likelihood_bound (`torch.FloatTensor` of shape `(batch_size,)`):
            The one-sample bound (ELBO) log p(v) + log P(x | v) - log q(v | x) <= log P(x) of each map, in nats.
        bits_per_dim (`torch.FloatTensor` of shape `()`):
            `loss` in bits (bits per pixel).
    """

    loss: Optional[torch.FloatTensor] = None
    log_likelihood_bound: Optional[torch.FloatTensor] = None
    bits_per_dim: Optional[torch.FloatTensor] = None


class SegmentationFlowPreTrainedModel(PreTrainedModel):
    config_class = SegmentationFlowConfig
    base_model_prefix = "segmentation_flow"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        # Every layer initialises itself (couplings start at the identity through zero-initialised output layers,
        # 1 x 1 mixings at random rotations); transformers' generic re-initialisation would undo that.
        pass


class SegmentationFlowModel(CheckedFlowMixin, FlowModelMixin, SegmentationFlowPreTrainedModel):
    """
    A model of `(height, width)` maps of `num_classes` classes, one row of the paper's Table 3 (`config.inverse`, or
    `config.vae`).

    Argmax and dequantization rows lift x to continuous v (`(B, C, H, W)`) with q(v | x) and model v with the
    density flow p(v); the map is recovered by an argmax over each pixel's channels (of each Cartesian digit) or by
    rounding down. The VAE draws z ~ q(z | x), models z with the density flow and x with p(x | z).

        model = SegmentationFlowModel(SegmentationFlowConfig(inverse="thresholding"))
        loss = model(input_ids).loss                           # nats per pixel, to minimise
        iwbo = model.log_likelihood(input_ids, num_samples=100)  # nats per map
        maps = model.sample(16, generator=torch.Generator().manual_seed(0))   # (16, H, W) class ids

    `forward`, `log_likelihood`, `sample_codes` and `sample` are those of [`FlowModelMixin`].
    """

    output_class = SegmentationFlowOutput

    def __init__(self, config: SegmentationFlowConfig):
        super().__init__(config)
        dense = dict(mid_channels=config.mid_channels, depth=config.depth, growth=config.growth,
                     num_blocks=config.num_blocks, dropout=config.dropout)
        K = config.num_classes
        if config.vae:
            self.encoding, self.inverse = None, None
            channels = config.latent_channels
            self.encoder = ConditionalFlow(channels, K, config.context_channels, config.encoder_steps, **dense)
            self.decoder = DenseNet(channels, K, zero_init=False, **dense)
        else:
            self.encoding = CartesianEncoding(K, config.cartesian_base)
            self.inverse = make_argmax_inverse(config.inverse, self.encoding.base)
            digits = self.encoding.digits
            channels = digits * self.inverse.width_per_digit
            if isinstance(self.inverse, TransformedGaussianInverse):
                # The conditional flow q(u | x) stands in for the inverse's Gaussian; its transform lifts u to v.
                self.encoder = ConditionalFlow(channels, K, config.context_channels, config.encoder_steps, **dense)
            elif self.inverse.num_params > 0:
                # The Gumbel inverse: only its per-pixel logits depend on x.
                self.encoder = DenseNet(K, digits * self.inverse.num_params, **dense)
            else:
                self.encoder = None  # uniform dequantization
        self.channels = channels
        self.flow = MultiScaleFlow(channels, config.height, config.width, config.num_levels, config.num_steps,
                                   config.factor_out, **dense)
        self.post_init()

    # ------------------------------------------------------------------------------------------ layout helpers
    @staticmethod
    def _pixels(v: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, H * W, C)`: the inverses' layout (pixels as positions, channels last)."""
        b, c, h, w = v.shape
        return v.permute(0, 2, 3, 1).reshape(b, h * w, c)

    @staticmethod
    def _channels(v: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The inverse of `_pixels`."""
        return v.reshape(v.shape[0], height, width, -1).permute(0, 3, 1, 2)

    def _one_hot(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.one_hot(input_ids.long(), self.config.num_classes).permute(0, 3, 1, 2).to(self.dtype)

    # ------------------------------------------------------------------------------------------ the bound
    def lift(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None):
        """
        One draw v ~ q(v | x) (z ~ q(z | x) for the VAE), `(B, C, H, W)`, and log q(v | x) in nats, `(B,)`.
        `input_ids` are assumed checked.
        """
        x = input_ids.long()
        if self.config.vae:
            return self.encoder.sample(self._one_hot(x), generator)
        b, h, w = x.shape
        digits = self.encoding.encode(x).reshape(b, h * w, -1)  # (B, H * W, d)
        if isinstance(self.inverse, TransformedGaussianInverse):
            u, log_q_u = self.encoder.sample(self._one_hot(x), generator)
            v, log_det = self.inverse.transform(self._pixels(u), digits)
            return self._channels(v, h, w), log_q_u - log_det
        params = None
        if self.encoder is not None:
            params = self._pixels(self.encoder(self._one_hot(x))).reshape(b, h * w, digits.shape[-1], -1)
        v, log_q = self.inverse(digits, params, generator=generator)
        return self._channels(v, h, w).to(self.dtype), log_q.to(self.dtype)

    def sample_bound(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One draw of the bound log p(v) + log P(x | v) - log q(v | x), in nats per map, shape `(B,)`."""
        self._check_input_ids(input_ids)
        v, log_q = self.lift(input_ids, generator)
        bound = self.flow.log_prob(v) - log_q
        if self.config.vae:
            log_px = F.log_softmax(self.decoder(v).float(), dim=1).gather(1, input_ids.long()[:, None])
            bound = bound + log_px.reshape(v.shape[0], -1).sum(dim=1).to(bound.dtype)
        return bound

    # ------------------------------------------------------------------------------------------ sampling
    def decode(self, v: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """
        Maps from continuous v `(B, C, H, W)`: class ids `(B, H, W)` by the argmax (rounding down for the
        dequantization rows), which may be >= K for unused Cartesian codes; the VAE draws x ~ p(x | z = v). A
        non-finite v (a model with NaN weights) is a RuntimeError, not class 0.
        """
        check_finite_draw(self, v)
        b, _, h, w = v.shape
        if self.config.vae:
            probs = torch.softmax(self.decoder(v).float(), dim=1).permute(0, 2, 3, 1)
            return torch.multinomial(probs.reshape(-1, self.config.num_classes), 1, generator=generator).view(b, h, w)
        return self.encoding.decode(self.inverse.decode(self._pixels(v))).view(b, h, w)


__all__ = ["SegmentationFlowModel", "SegmentationFlowOutput", "SegmentationFlowPreTrainedModel"]
