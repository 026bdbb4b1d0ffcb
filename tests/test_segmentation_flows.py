# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Segmentation-map flows: the image layers against autograd Jacobians, the bounds of every row against independent
estimates of the model's exact probabilities, save/load, and the training script."""

import itertools
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from hf_multinomial.flows.configuration_argmax_flow import INVERSES
from hf_multinomial.flows.configuration_segmentation_flow import SegmentationFlowConfig
from hf_multinomial.flows.image_layers import (
    AffineCoupling,
    ConditionalFlow,
    MultiScaleFlow,
    Squeeze2d,
    Subflow,
    squeeze2d,
    unsqueeze2d,
)
from hf_multinomial.flows.transforms import ChannelMixing

DENSE = dict(mid_channels=4, depth=2, growth=3, num_blocks=1)


def _randomize(module, scale=0.3, seed=0):
    """Perturb every parameter so zero-initialised output layers do not hide a wrong formula."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _jacobian_log_det(fn, x):
    """log |det d fn(x) / dx| of one example `x` (C, H, W), flattening input and output."""
    flat = lambda z: fn(z.view(1, *x.shape)).reshape(-1)  # noqa: E731
    J = jacobian(flat, x.reshape(-1))
    return torch.linalg.slogdet(J)[1]


def _check_layer(layer, shape, context=None):
    layer = _randomize(layer.double())
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    extra = () if context is None else (context,)
    y, log_det = layer(x, *extra)
    assert log_det.shape == (2,)
    torch.testing.assert_close(layer.inverse(y, *extra), x, rtol=1e-10, atol=1e-10)
    for b in range(2):
        ctx = () if context is None else (context[b : b + 1],)
        expected = _jacobian_log_det(lambda z: layer(z, *ctx)[0], x[b])
        torch.testing.assert_close(log_det[b], expected, rtol=1e-8, atol=1e-8)


def test_squeeze_is_a_permutation_with_zero_log_det():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    y = squeeze2d(x)
    assert y.shape == (2, 12, 2, 3)
    # Each output pixel holds one 2 x 2 patch of every input channel.
    assert torch.equal(y[0, :4, 0, 0], x[0, 0, :2, :2].reshape(-1))
    assert torch.equal(torch.sort(y.flatten())[0], torch.sort(x.flatten())[0])
    torch.testing.assert_close(unsqueeze2d(y), x)
    _check_layer(Squeeze2d(), (1, 2, 4))
    with pytest.raises(ValueError, match="divisible"):
        squeeze2d(torch.zeros(1, 1, 3, 4))


def test_invertible_1x1_mixing_of_the_channel_axis_log_det():
    _check_layer(ChannelMixing(3, dim=1), (3, 2, 2))


@pytest.mark.parametrize("channels", [2, 3])
def test_affine_coupling_log_det(channels):
    _check_layer(AffineCoupling(channels, **DENSE), (channels, 2, 3))


def test_conditional_subflow_log_det():
    context = torch.randn(2, 2, 2, 2, dtype=torch.float64)
    _check_layer(Subflow(4, context_channels=2, **DENSE), (4, 2, 2), context)


@pytest.mark.parametrize("factor_out", [True, False])
def test_multiscale_flow_density_is_the_change_of_variables(factor_out):
    """log p(v) of the whole density model against a standard normal pushed through its autograd Jacobian."""
    torch.manual_seed(0)
    flow = _randomize(MultiScaleFlow(2, 4, 4, num_levels=2, num_steps=2, factor_out=factor_out, **DENSE).double(), 0.1)
    v = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    log_p = flow.log_prob(v)

    def to_base(z):  # v -> every base variable, concatenated
        parts, h = [], z
        for index, steps in enumerate(flow.levels):
            h = squeeze2d(h)
            for step in steps:
                h = step(h)[0]
            if index < len(flow.priors):
                kept = h.shape[1] // 2
                mean, log_scale = flow.priors[index](h[:, :kept])
                parts.append(((h[:, kept:] - mean) * torch.exp(-log_scale)).reshape(-1))
                h = h[:, :kept]
        return torch.cat(parts + [h.reshape(-1)])

    for b in range(3):
        J = jacobian(to_base, v[b : b + 1]).reshape(32, 32)
        base = to_base(v[b : b + 1])
        expected = torch.distributions.Normal(0.0, 1.0).log_prob(base).sum() + torch.linalg.slogdet(J)[1]
        torch.testing.assert_close(log_p[b], expected, rtol=1e-8, atol=1e-8)
    # Sampling runs the inverse: the samples map back to finite densities and the shapes match.
    sample = flow.sample(5, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (5, 2, 4, 4) and torch.isfinite(flow.log_prob(sample)).all()


def test_conditional_flow_log_q_is_its_density():
    """log q(u | x) of the conditional flow against the standard normal noise pushed through the autograd Jacobian
    of noise -> u (for a fixed x); `sample` is the same map of a standard normal draw."""
    torch.manual_seed(0)
    q = _randomize(ConditionalFlow(1, 3, context_channels=2, num_steps=2, **DENSE).double(), 0.2)
    condition = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    noise = torch.randn(1, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    u, log_q = q(noise, condition)
    J = jacobian(lambda e: q(e.view_as(noise), condition)[0].reshape(-1), noise.reshape(-1))
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(noise).sum() - torch.linalg.slogdet(J)[1]
    torch.testing.assert_close(log_q[0], expected, rtol=1e-8, atol=1e-8)
    sampled = q.sample(condition, torch.Generator().manual_seed(3))
    torch.testing.assert_close(sampled[0], u)
    torch.testing.assert_close(sampled[1], log_q)


# ---------------------------------------------------------------------------------------------- the models

from hf_multinomial.flows.modeling_segmentation_flow import SegmentationFlowModel  # noqa: E402


def _row(model):
    """The config arguments of a row of Table 3: an inverse, or the VAE."""
    return dict(vae=True) if model == "vae" else dict(inverse=model)


def _tiny_model(model, num_classes=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    config = SegmentationFlowConfig(num_classes=num_classes, height=2, width=2, num_levels=1, num_steps=2,
                                    encoder_steps=1, context_channels=2, latent_channels=1, mid_channels=4, depth=1,
                                    growth=4, **_row(model), **kwargs)
    # Small random perturbations: the model is not at its (identity) initialisation, so nothing cancels by chance.
    return _randomize(SegmentationFlowModel(config).double().eval(), scale=0.1, seed=seed)


def _all_maps(num_classes):
    return torch.tensor(list(itertools.product(range(num_classes), repeat=4))).view(-1, 2, 2)


def _model_probabilities(model, maps, num_samples=20000):
    """P_model(x) of every map from draws of the generative direction alone (an estimate independent of q): the
    frequencies of the sampled maps; for the dequantization rows the mass of each cell x + [0, 1)^(H x W) of v ~ p(v)
    (sampling clamps v outside [0, K) into the edge cells, which this does not)."""
    generator = torch.Generator().manual_seed(123)
    K = model.config.num_classes
    if not model.config.vae and model.config.inverse.endswith("dequantization"):
        v = model.flow.sample(num_samples, generator=generator)[:, 0]
        inside = ((v >= 0) & (v < K)).flatten(1).all(dim=1)
        samples = torch.floor(v[inside]).long()
    else:
        samples = model.sample(num_samples, generator=generator)
    codes = (samples.flatten(1) * K ** torch.arange(3, -1, -1)).sum(dim=1)
    counts = torch.bincount(codes, minlength=K**4).double()
    index = (maps.flatten(1) * K ** torch.arange(3, -1, -1)).sum(dim=1)
    return counts[index] / num_samples


@pytest.mark.parametrize("model_name,num_classes,cartesian_base", [
    ("thresholding", 2, None), ("thresholding", 3, None), ("thresholding", 5, 2), ("gumbel_thresholding", 3, None),
    ("gumbel_thresholding", 2, None), ("variational_dequantization", 3, None), ("variational_dequantization", 5, 2),
    ("vae", 3, None),
])
def test_log_q_is_the_density_of_the_lifted_v(model_name, num_classes, cartesian_base):
    """For the rows whose q(v | x) is a flow: log q(v | x) of `lift` against the standard normal noise pushed through
    the autograd Jacobian of noise -> v (conditional flow, then thresholding / sigmoid), and v lies in x's region."""
    model = _tiny_model(model_name, num_classes, cartesian_base=cartesian_base)
    x = torch.randint(0, num_classes, (1, 2, 2), generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(1, model.encoder.channels, 2, 2, dtype=torch.float64, generator=generator)

    def lift(e):  # the model's lift with the encoder's standard normal draw replaced by e
        model.encoder.sample = lambda condition, generator=None: model.encoder(e.view_as(noise), condition)
        try:
            return model.lift(x)
        finally:
            del model.encoder.sample

    v, log_q = lift(noise)
    J = jacobian(lambda e: lift(e)[0].reshape(-1), noise.reshape(-1))
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(noise).sum() - torch.linalg.slogdet(J)[1]
    torch.testing.assert_close(log_q[0], expected, rtol=1e-7, atol=1e-7)
    if model_name != "vae":
        assert torch.equal(model.decode(v), x)


# Rows whose bounds agree with the sampled probabilities closely at this size (q is close enough to the posterior).
ROWS = [(model, 2) for model in (*INVERSES, "vae")] + [
    (model, 3) for model in ("thresholding", "gumbel", "gumbel_thresholding")
]


@pytest.mark.parametrize("model_name,num_classes", ROWS)
def test_bounds_are_below_the_model_probabilities_and_normalised(model_name, num_classes):
    """On every 2 x 2 map, against P_model(x) from the frequencies of the model's own samples (independent of q): the
    ELBO lies below log P_model(x), the IWBO tightens with k, and exp(IWBO) (whose mean is P_model(x)) sums over all
    maps to at most 1 (to 1 where the lifting covers the whole space)."""
    model = _tiny_model(model_name, num_classes)
    maps = _all_maps(num_classes)
    num_draws = 50000
    reference = _model_probabilities(model, maps, num_draws)
    reference_std = torch.sqrt(reference * (1 - reference) / num_draws)  # binomial noise of the frequencies
    generator = torch.Generator().manual_seed(0)
    n = maps.shape[0]
    reps, k = (100, 1000) if num_classes == 2 else (20, 200)

    elbo = model.log_likelihood(maps.repeat(reps, 1, 1), generator=generator).view(reps, n)
    assert torch.isfinite(elbo).all()
    iwbo_8 = model.log_likelihood(maps.repeat(reps // 4, 1, 1), num_samples=8, generator=generator).view(-1, n)
    iwbo = model.log_likelihood(maps, num_samples=k, generator=generator)
    # The bound tightens with k (in expectation; averaged over the draws and maps).
    assert elbo.mean() < iwbo_8.mean() < iwbo.mean()
    # ELBO <= log P(x) for every map: the mean of the draws against the sampled frequencies, up to both noises.
    elbo_noise = 4 * elbo.std(0) / math.sqrt(reps)
    assert (elbo.mean(0) - elbo_noise <= torch.log(reference + 4 * reference_std)).all()
    total, reference_total = float(torch.exp(iwbo).sum()), float(reference.sum())
    if model_name.endswith("dequantization"):
        assert reference_total < 0.5  # p(v) puts mass outside [0, K)^(H x W): P(x) sums to less than 1
    else:
        assert reference_total == pytest.approx(1.0)  # every sample is a valid map
    # exp(IWBO) estimates P(x) without bias. Where q(v | x) vanishes at the region's boundary faster than p(v)
    # (softplus and Gumbel thresholding, logit-normal dequantization) the weights p / q have heavy tails and a sum of
    # 1000 draws is erratic (a single draw can double it); the exactness of those q's is checked by
    # test_log_q_is_the_density_of_the_lifted_v instead. The others must sum to the sampled total.
    if num_classes == 2 and model_name in ("uniform_dequantization", "gumbel", "vae"):
        assert total == pytest.approx(reference_total, rel=0.1)


def test_forward_output_and_cartesian_digits():
    """The output's loss is the negative mean bound per pixel; with a Cartesian base the model's channels are the
    digits' and sampling returns valid ids only."""
    model = _tiny_model("thresholding", num_classes=5, cartesian_base=2)
    assert model.channels == 3  # 5 classes need 3 bits, one value each
    maps = _all_maps(5)[::37]
    out = model(maps, generator=torch.Generator().manual_seed(0))
    assert out.log_likelihood_bound.shape == (maps.shape[0],)
    torch.testing.assert_close(out.loss, -out.log_likelihood_bound.mean() / 4)
    torch.testing.assert_close(out.bits_per_dim, out.loss / math.log(2))
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (64, 2, 2) and samples.min() >= 0 and samples.max() < 5
    # The same generator seed gives the same draws.
    again = model(maps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.log_likelihood_bound, out.log_likelihood_bound)


def test_bad_inputs_are_rejected():
    model = _tiny_model("gumbel")
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="class id 2"):
        model(torch.tensor([[[0, 1], [2, 0]]]))
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="inverse must be one of"):
        SegmentationFlowConfig(inverse="nope")
    with pytest.raises(ValueError, match="divisible"):
        SegmentationFlowConfig(height=30, width=64, num_levels=4)


def _register_auto_classes():
    from transformers import AutoConfig, AutoModel

    from hf_multinomial.flows.configuration_segmentation_flow import SegmentationFlowConfig as Config

    import hf_multinomial  # noqa: F401  (registers the Auto classes once the package does)

    try:
        AutoConfig.register("segmentation_flow", Config)
        AutoModel.register(Config, SegmentationFlowModel)
    except ValueError:  # already registered
        pass


@pytest.mark.parametrize("model_name", ["variational_dequantization", "vae"])
def test_save_and_load_through_auto_model(tmp_path, model_name):
    from transformers import AutoModel

    _register_auto_classes()
    model = _tiny_model(model_name).float()
    model.save_pretrained(tmp_path)
    maps = _all_maps(2)
    expected = model(maps, generator=torch.Generator().manual_seed(0)).log_likelihood_bound
    expected_samples = model.sample(8, generator=torch.Generator().manual_seed(1))
    for kwargs in ({}, {"trust_remote_code": True}):  # the installed package, then the copied modeling files
        loaded = AutoModel.from_pretrained(tmp_path, **kwargs).eval()
        assert type(loaded).__name__ == "SegmentationFlowModel" and loaded.config.to_dict().items() >= _row(model_name).items()
        bound = loaded(maps, generator=torch.Generator().manual_seed(0)).log_likelihood_bound
        torch.testing.assert_close(bound, expected)
        torch.testing.assert_close(loaded.sample(8, generator=torch.Generator().manual_seed(1)), expected_samples)


# ---------------------------------------------------------------------------------------------- training


def test_training_script_trains_evaluates_saves_and_resumes(tmp_path):
    import json

    from transformers import AutoModel

    from hf_multinomial.training import run as training_run
    from hf_multinomial.training.segmentation_flow import TASK

    _register_auto_classes()
    out = str(tmp_path / "run")
    argv = ["--preset", "tiny", "--inverse", "thresholding", "--output_dir", out, "--num_synthetic_maps", "32",
            "--max_train_steps", "3", "--report_to", "none", "--num_eval_maps", "4", "--num_iwbo_samples", "3",
            "--num_validation_sequences", "4", "--num_card_samples", "4", "--lr_warmup_epochs", "2"]
    args = training_run.parse_arguments(TASK, argv)
    assert args.training.optimizer == "adamax" and args.command_line[0] == "train_segmentation_flow.py"
    stats = training_run.train(TASK, args)
    assert stats["global_step"] == 3
    # A warm-up of 2 epochs of 32 // 8 = 4 steps: 8 steps, so the first step's learning rate is 2/8 of the peak.
    assert stats["history"][0]["lr"] == pytest.approx(1e-3 * 2 / 8 * 0.995 ** (1 / 4))
    for key in ("train_bpp", "validation_bpp", "test_bpp_elbo", "test_bpp_iwbo"):
        assert math.isfinite(stats[key]), key
    with open(f"{out}/train_results.json") as f:
        assert json.load(f)["iwbo_samples"] == 3
    with open(f"{out}/config.json") as f:
        assert json.load(f)["auto_map"]["AutoModel"].endswith("SegmentationFlowModel")
    for name in ("README.md", "samples.png", "model.safetensors", "image_layers.py"):
        assert (tmp_path / "run" / name).is_file(), name
    model = AutoModel.from_pretrained(out)
    assert model.config.inverse == "thresholding" and not model.config.vae and model.config.height == 8
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 8, 16)

    resumed = training_run.train(TASK, training_run.parse_arguments(TASK,
        [*argv[:-8], "--max_train_steps", "5", "--resume_from_checkpoint", "latest", "--num_eval_maps", "0",
         "--num_card_samples", "0", "--lr_warmup_epochs", "2"]))
    assert resumed["global_step"] == 5 and "test_bpp_elbo" not in resumed
