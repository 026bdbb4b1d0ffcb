# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Argmax flows, dequantization baselines and a VAE for segmentation maps (Hoogeboom et al., 2021, Section 6.2 and
Appendix B.2) as a transformers model: the rows of the paper's Cityscapes comparison (Table 3).
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .cartesian import CartesianEncoding
from .configuration_segmentation_flow import SegmentationFlowConfig
from .image_layers import ConditionalFlow, DenseNet, MultiScaleFlow
from .likelihood import importance_weighted_bound, sample_valid
from .surjections import gumbel_threshold, make_argmax_inverse, threshold


@dataclass
class SegmentationFlowOutput(ModelOutput):
    """
    Output of [`SegmentationFlowModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            The negative bound in nats per pixel, averaged over the batch: the training loss.
        log_likelihood_bound (`torch.FloatTensor` of shape `(batch_size,)`):
            The one-sample bound (ELBO) log p(v) + log P(x | v) - log q(v | x) <= log P(x) of each map, in nats.
        bits_per_pixel (`torch.FloatTensor` of shape `()`):
            `loss` in bits.
    """

    loss: Optional[torch.FloatTensor] = None
    log_likelihood_bound: Optional[torch.FloatTensor] = None
    bits_per_pixel: Optional[torch.FloatTensor] = None


class SegmentationFlowPreTrainedModel(PreTrainedModel):
    config_class = SegmentationFlowConfig
    base_model_prefix = "segmentation_flow"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        # Every layer initialises itself (couplings start at the identity through zero-initialised output layers,
        # 1 x 1 convolutions at random rotations); transformers' generic re-initialisation would undo that.
        pass


class SegmentationFlowModel(SegmentationFlowPreTrainedModel):
    """
    A model of `(height, width)` maps of `num_classes` classes, one row of the paper's Table 3 (`config.model`).

    Argmax and dequantization rows lift x to continuous v (`(B, C, H, W)`) with q(v | x) and model v with the
    density flow p(v); the map is recovered by an argmax over each pixel's channels (of each Cartesian digit) or by
    rounding down. The VAE draws z ~ q(z | x), models z with the density flow and x with p(x | z).

        model = SegmentationFlowModel(SegmentationFlowConfig(model="thresholding"))
        loss = model(input_ids).loss                           # nats per pixel, to minimise
        iwbo = model.log_likelihood(input_ids, num_samples=100)  # nats per map
        maps = model.sample(16, generator=torch.Generator().manual_seed(0))   # (16, H, W) class ids
    """

    def __init__(self, config: SegmentationFlowConfig):
        super().__init__(config)
        dense = dict(mid_channels=config.mid_channels, depth=config.depth, growth=config.growth,
                     num_blocks=config.num_blocks, dropout=config.dropout)
        K = config.num_classes
        if config.model == "vae":
            self.encoding, self.inverse = None, None
            channels = config.latent_channels
            self.encoder = ConditionalFlow(channels, K, config.context_channels, config.encoder_steps, **dense)
            self.decoder = DenseNet(channels, K, zero_init=False, **dense)
        else:
            self.encoding = CartesianEncoding(K, config.cartesian_base)
            self.inverse = make_argmax_inverse(config.model, self.encoding.base)
            digits = self.encoding.digits
            channels = digits * self.inverse.width_per_digit
            if config.model == "gumbel":
                # q(v | x) is a Gumbel distribution conditioned on its argmax: only its logits depend on x.
                self.encoder = DenseNet(K, digits * self.inverse.num_params, **dense)
            elif config.model == "uniform_dequantization":
                self.encoder = None
            else:
                self.encoder = ConditionalFlow(channels, K, config.context_channels, config.encoder_steps, **dense)
        self.channels = channels
        self.flow = MultiScaleFlow(channels, config.height, config.width, config.num_levels, config.num_steps,
                                   config.factor_out, **dense)
        self.post_init()

    # ------------------------------------------------------------------------------------------ layout helpers
    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        shape = (self.config.height, self.config.width)
        if input_ids.dim() != 3 or tuple(input_ids.shape[1:]) != shape:
            raise ValueError(
                f"input_ids must have shape (batch_size, {shape[0]}, {shape[1]}), got {tuple(input_ids.shape)}"
            )
        if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"input_ids must hold integer class ids, got dtype {input_ids.dtype}")
        if input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.num_classes:
                bad = low if low < 0 else high
                raise ValueError(f"class id {bad} is outside [0, {self.config.num_classes})")

    def _digit_axes(self, v: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, H, W, d)` (M = 2 or dequantization) or `(B, H, W, d, M)`: the primitives' layout."""
        b, _, h, w = v.shape
        v = v.permute(0, 2, 3, 1)
        return v if self.inverse.width_per_digit == 1 else v.reshape(b, h, w, self.encoding.digits, -1)

    def _channel_axis(self, v: torch.Tensor) -> torch.Tensor:
        """The inverse of `_digit_axes`."""
        b, h, w = v.shape[:3]
        return v.reshape(b, h, w, self.channels).permute(0, 3, 1, 2)

    def _one_hot(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.one_hot(input_ids.long(), self.config.num_classes).permute(0, 3, 1, 2).to(self.dtype)

    # ------------------------------------------------------------------------------------------ the bound
    def lift(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None):
        """
        One draw v ~ q(v | x) (z ~ q(z | x) for the VAE), `(B, C, H, W)`, and log q(v | x) in nats, `(B,)`.
        `input_ids` are assumed checked.
        """
        kind = self.config.model
        x = input_ids.long()
        if kind == "vae":
            return self.encoder.sample(self._one_hot(x), generator)
        digits = self.encoding.encode(x)  # (B, H, W, d)
        b, h, w, d = digits.shape
        if kind in ("uniform_dequantization", "gumbel"):
            params = None
            if kind == "gumbel":
                params = self.encoder(self._one_hot(x)).permute(0, 2, 3, 1).reshape(b, h * w, d, -1)
            v, log_q = self.inverse(digits.reshape(b, h * w, d), params, generator=generator)
            return self._channel_axis(v.reshape(b, h, w, -1)).to(self.dtype), log_q.to(self.dtype)
        u, log_q = self.encoder.sample(self._one_hot(x), generator)
        u = self._digit_axes(u)
        if kind == "variational_dequantization":
            top = digits.to(u.dtype) + 1
            # x + sigmoid(u) may round up to x + 1 (the next cell); keep it one ulp below.
            v = torch.minimum(top - 1 + torch.sigmoid(u), torch.nextafter(top, torch.full_like(top, -math.inf)))
            log_det = F.logsigmoid(u) + F.logsigmoid(-u)  # log dv/du
        else:
            transform = threshold if kind == "thresholding" else gumbel_threshold
            v, log_det = transform(u, digits, self.encoding.base)
        return self._channel_axis(v), log_q - log_det.reshape(b, -1).sum(dim=1)

    def sample_bound(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One draw of the bound log p(v) + log P(x | v) - log q(v | x), in nats per map, shape `(B,)`."""
        self._check_input_ids(input_ids)
        v, log_q = self.lift(input_ids, generator)
        bound = self.flow.log_prob(v) - log_q
        if self.config.model == "vae":
            log_px = F.log_softmax(self.decoder(v).float(), dim=1).gather(1, input_ids.long()[:, None])
            bound = bound + log_px.reshape(v.shape[0], -1).sum(dim=1).to(bound.dtype)
        return bound

    def forward(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None,
                return_dict: Optional[bool] = None):
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, height, width)`): class ids in [0, num_classes).
            generator (`torch.Generator`, *optional*): for the draw v ~ q(v | x).
            return_dict (`bool`, *optional*): return a [`SegmentationFlowOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        bound = self.sample_bound(input_ids, generator)
        loss = -bound.mean() / (self.config.height * self.config.width)
        bits = loss / math.log(2.0)
        if not return_dict:
            return loss, bound, bits
        return SegmentationFlowOutput(loss=loss, log_likelihood_bound=bound, bits_per_pixel=bits)

    @torch.no_grad()
    def log_likelihood(self, input_ids: torch.Tensor, num_samples: int = 1, generator: Optional[torch.Generator] = None,
                       batch_size: Optional[int] = None) -> torch.Tensor:
        """
        The importance-weighted bound (IWBO) log (1/k) sum_i p(v_i) P(x | v_i) / q(v_i | x), v_i ~ q(v | x), in nats
        per map, float64, shape `(B,)`: a lower bound on log P(x) for every k that tightens as k grows (in
        expectation); k = 1 is the ELBO of `forward`.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, height, width)`): the maps.
            num_samples (`int`): k, draws from q per map.
            generator (`torch.Generator`, *optional*): for the draws.
            batch_size (`int`, *optional*): rows per pass (the `B * k` rows are cut into chunks of this size);
                default: all at once.
        """
        self._check_input_ids(input_ids)
        return importance_weighted_bound(self.sample_bound, input_ids, num_samples, generator, batch_size)

    # ------------------------------------------------------------------------------------------ sampling
    def decode(self, v: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """
        Maps from continuous v `(B, C, H, W)`: class ids `(B, H, W)` by the argmax (rounding down for the
        dequantization rows), which may be >= K for unused Cartesian codes; the VAE draws x ~ p(x | z = v).
        """
        b, _, h, w = v.shape
        if self.config.model == "vae":
            probs = torch.softmax(self.decoder(v).float(), dim=1).permute(0, 2, 3, 1)
            return torch.multinomial(probs.reshape(-1, self.config.num_classes), 1, generator=generator).view(b, h, w)
        digits = self.inverse.decode(v.permute(0, 2, 3, 1).reshape(b, h * w, self.channels))
        return self.encoding.decode(digits).view(b, h, w)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, max_rounds: int = 100):
        """
        Draw `batch_size` maps, `torch.LongTensor` of shape `(batch_size, height, width)`: v ~ p(v) then
        x = argmax(v) (or x ~ p(x | z)).

        With a Cartesian base, M**d may exceed K: a map holding an unused code (>= K) is drawn again (this samples
        the model conditioned on valid maps). After `max_rounds` draws that still leave invalid maps a
        `RuntimeError` says so.
        """
        def draw(n):
            return self.decode(self.flow.sample(n, generator=generator), generator)

        return sample_valid(draw, batch_size, self.config.num_classes, max_rounds, name="maps")


__all__ = ["SegmentationFlowModel", "SegmentationFlowOutput", "SegmentationFlowPreTrainedModel"]
