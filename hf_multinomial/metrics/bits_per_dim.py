# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Bits per character / pixel: an `evaluate` metric over per-example negative log-likelihoods (or bounds) in nats."""

import math

import datasets
import evaluate

_DESCRIPTION = """
Turns negative log-likelihoods (or negative ELBOs) in nats into bits per unit: the sum of the nats divided by
ln 2 and by the total number of units (characters for text, pixels for segmentation maps). Examples are weighted by
their number of units, so the result is the average over all units, not over examples.
"""

_KWARGS_DESCRIPTION = """
Args:
    negative_log_likelihoods (`list` of `float`): per example, -log p(x) or the negative ELBO, in nats.
    num_units (`list` of `int`): per example, the number of characters (or pixels) it holds.
Returns:
    `bpc` (or `bpp` with config_name="pixel", `bpd` with config_name="dimension"): bits per unit.
    `nats_per_unit`: the same in nats.
    `num_units`: the total number of units.
Examples:
    >>> metric = evaluate.load("hf_multinomial/metrics/bits_per_dim.py")
    >>> metric.compute(negative_log_likelihoods=[177.4], num_units=[256])["bpc"]
"""

_KEYS = {"character": "bpc", "default": "bpc", "pixel": "bpp", "dimension": "bpd"}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BitsPerDim(evaluate.Metric):
    def _info(self):
        if self.config_name not in _KEYS:
            raise ValueError(f"Unknown config_name {self.config_name!r}; use one of {sorted(_KEYS)}")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Hoogeboom et al., Argmax Flows and Multinomial Diffusion, NeurIPS 2021",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"negative_log_likelihoods": datasets.Value("float64"), "num_units": datasets.Value("int64")}
            ),
        )

    def _compute(self, negative_log_likelihoods, num_units):
        total_units = int(sum(num_units))
        if total_units <= 0:
            raise ValueError(f"num_units must add up to a positive number, got {total_units}")
        if any(not math.isfinite(nll) for nll in negative_log_likelihoods):
            raise ValueError("negative_log_likelihoods holds a value that is not finite")
        nats = math.fsum(negative_log_likelihoods) / total_units
        return {_KEYS[self.config_name]: nats / math.log(2), "nats_per_unit": nats, "num_units": total_units}
