# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Configuration of the text argmax flows (Hoogeboom et al., 2021, Section 4)."""

from transformers import PreTrainedConfig

from .surjections import ARGMAX_INVERSES

FLOW_TYPES = ("autoregressive", "coupling")
# The probabilistic inverses q(v | x), shared with the segmentation flows.
INVERSES = tuple(ARGMAX_INVERSES)


def check_count(name: str, value, minimum: int = 1) -> None:
    """A ValueError naming `name` and `value` unless `value` is an integer >= `minimum` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_dropout(name: str, value) -> None:
    """A ValueError naming `name` and `value` unless `value` is a probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def check_argmax_settings(num_classes: int, inverse: str, cartesian_base) -> None:
    """The settings every argmax flow config shares: K >= 2 classes, an inverse of INVERSES, a base >= 2 or None."""
    if inverse not in INVERSES:
        raise ValueError(f"inverse must be one of {INVERSES}, got {inverse!r}")
    check_count("num_classes", num_classes, minimum=2)
    if cartesian_base is not None and (isinstance(cartesian_base, bool) or not isinstance(cartesian_base, int)
                                       or cartesian_base < 2):
        raise ValueError(f"cartesian_base must be None or an integer >= 2, got {cartesian_base!r}")


class ArgmaxFlowConfig(PreTrainedConfig):
    r"""
    Configuration of an [`ArgmaxFlowModel`]: a density flow p(v) on continuous v, the surjection x = argmax(v), and a
    learned probabilistic inverse q(v | x), trained on log P(x) >= E_q[log p(v) - log q(v | x)].

    Args:
        num_classes (`int`): number of classes K per position (27 for text8, 256 for enwik8).
        seq_len (`int`): number of positions L of a sequence; `sample_shape` is `(seq_len,)`.
        flow_type (`str`): the density flow p(v): `"autoregressive"` (mixture-of-logistics CDF transforms conditioned
            by an LSTM over the previous positions: the Argmax AR Flow) or `"coupling"` (bi-directional LSTM couplings
            with invertible 1x1 mixing: the Argmax Coupling Flow).
        inverse (`str`): q(v | x): `"thresholding"` (softplus thresholding of a conditional Gaussian), `"gumbel"`
            (Gumbels conditioned on their argmax), `"gumbel_thresholding"`, or the baselines of the paper's Table 2,
            `"uniform_dequantization"` and `"variational_dequantization"` (of the Cartesian digits).
        cartesian_base (`int`, *optional*): encode each class as d digits in base M = `cartesian_base` with
            M**d >= K (the paper's Table 9); the flow's width per position is d * M, or d for M = 2 (one value per
            bit, its sign the bit). `None`: one digit in base K (width K).
        hidden_size (`int`): hidden units of the density flow's LSTMs.
        num_layers (`int`): LSTM layers of the density flow's conditioners.
        num_flow_steps (`int`): autoregressive or coupling steps of p(v).
        num_mixtures (`int`): logistic components of each elementwise CDF transform.
        context_size (`int`): hidden units of the bi-directional LSTM that conditions q(v | x).
        context_layers (`int`): its layers (0: the embedding of each position only).
        input_dropout (`float`): dropout on the density flow's LSTM inputs (the paper's Table 6 "dropout").
    """

    model_type = "argmax_flow"

    def __init__(
        self,
        num_classes: int = 27,
        seq_len: int = 256,
        flow_type: str = "autoregressive",
        inverse: str = "thresholding",
        cartesian_base=None,
        hidden_size: int = 512,
        num_layers: int = 2,
        num_flow_steps: int = 1,
        num_mixtures: int = 27,
        context_size: int = 128,
        context_layers: int = 1,
        input_dropout: float = 0.0,
        **kwargs,
    ):
        if flow_type not in FLOW_TYPES:
            raise ValueError(f"flow_type must be one of {FLOW_TYPES}, got {flow_type!r}")
        check_argmax_settings(num_classes, inverse, cartesian_base)
        # Every size: 0 or a negative value is never "none" or "default" (num_mixtures=0 gave a NaN loss).
        for name, value in (("seq_len", seq_len), ("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("num_flow_steps", num_flow_steps), ("num_mixtures", num_mixtures),
                            ("context_size", context_size)):
            check_count(name, value)
        check_count("context_layers", context_layers, minimum=0)  # 0: the embedding of each position only
        check_dropout("input_dropout", input_dropout)
        self.num_classes = num_classes
        self.seq_len = seq_len
        self.flow_type = flow_type
        self.inverse = inverse
        self.cartesian_base = cartesian_base
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_flow_steps = num_flow_steps
        self.num_mixtures = num_mixtures
        self.context_size = context_size
        self.context_layers = context_layers
        self.input_dropout = input_dropout
        super().__init__(**kwargs)

    @property
    def sample_shape(self):
        """The shape of one example, `(seq_len,)`."""
        return (self.seq_len,)


__all__ = ["FLOW_TYPES", "INVERSES", "ArgmaxFlowConfig", "check_argmax_settings", "check_count", "check_dropout"]
