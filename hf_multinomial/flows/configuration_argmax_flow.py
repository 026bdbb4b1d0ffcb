# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Configuration of the text argmax flows (Hoogeboom et al., 2021, Section 4)."""

from transformers import PreTrainedConfig

FLOW_TYPES = ("autoregressive", "coupling", "identity")
INVERSES = ("thresholding", "gumbel", "gumbel_thresholding", "uniform_dequantization", "variational_dequantization")


class ArgmaxFlowConfig(PreTrainedConfig):
    r"""
    Configuration of an [`ArgmaxFlowModel`]: a density flow p(v) on continuous v, the surjection x = argmax(v), and a
    learned probabilistic inverse q(v | x), trained on log P(x) >= E_q[log p(v) - log q(v | x)].

    Args:
        vocab_size (`int`): number of classes K per position (27 for text8, 256 for enwik8).
        seq_len (`int`): number of positions L of a sequence.
        flow_type (`str`): the density flow p(v): `"autoregressive"` (mixture-of-logistics CDF transforms conditioned
            by an LSTM over the previous positions: the Argmax AR Flow), `"coupling"` (bi-directional LSTM couplings
            with invertible 1x1 mixing: the Argmax Coupling Flow) or `"identity"` (a standard normal p(v), for tests).
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
        vocab_size: int = 27,
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
        if inverse not in INVERSES:
            raise ValueError(f"inverse must be one of {INVERSES}, got {inverse!r}")
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
        if cartesian_base is not None and cartesian_base < 2:
            raise ValueError(f"cartesian_base must be None or at least 2, got {cartesian_base}")
        self.vocab_size = vocab_size
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


__all__ = ["ArgmaxFlowConfig"]
