# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Argmax flows: Gumbel utilities, argmax surjections and their inverses, Cartesian encodings, density flows, and
the transformers models built from them.

Every module in this folder imports only torch, numpy, transformers and its sibling modules (`from .name import`),
so that `save_pretrained` of a model registered for the Auto classes can copy the modeling file and its sibling
imports into the saved folder for `trust_remote_code=True`.
"""

from .cartesian import CartesianEncoding
from .configuration_argmax_flow import ArgmaxFlowConfig
from .discrete_flow import DiscreteFlow
from .density import AutoregressiveFlow, CouplingFlow, DensityFlow
from .modeling_argmax_flow import ArgmaxFlowModel, ArgmaxFlowOutput
from .configuration_segmentation_flow import SegmentationFlowConfig
from .modeling_segmentation_flow import SegmentationFlowModel, SegmentationFlowOutput
from .surjections import ArgmaxInverse, argmax_decode, gumbel_threshold, make_argmax_inverse, threshold

__all__ = [
    "ArgmaxFlowConfig",
    "ArgmaxFlowModel",
    "ArgmaxFlowOutput",
    "ArgmaxInverse",
    "AutoregressiveFlow",
    "CartesianEncoding",
    "CouplingFlow",
    "DensityFlow",
    "DiscreteFlow",
    "SegmentationFlowConfig",
    "SegmentationFlowModel",
    "SegmentationFlowOutput",
    "argmax_decode",
    "gumbel_threshold",
    "make_argmax_inverse",
    "threshold",
]
