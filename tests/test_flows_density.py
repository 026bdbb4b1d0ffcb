# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Density flows: every layer and both flows invert exactly, their log-determinants match autograd Jacobians,
a 1-D and a 2-D density integrate to one, and sampling is reproducible."""

import copy
import math

import numpy as np
import pytest
import torch

from hf_multinomial.flows.density import (
    AutoregressiveFlow,
    AutoregressiveMixtureLayer,
    CouplingFlow,
    CouplingMixtureLayer,
    DensityFlow,
    lstm_step,
)
from hf_multinomial.flows.transforms import (
    ChannelMixing,
    ReverseSequence,
    init_mixture_bias,
    mixture_logistic_cdf,
    mixture_logistic_cdf_inverse,
    mixture_num_params,
)


def perturbed(module, scale=0.3, seed=0):
    """float64, eval mode, and every parameter moved off its initial value, so that zero-initialised output
    layers do not hide a wrong conditioner."""
    module = module.double().eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def log_abs_det_jacobian(layer, v):
    """log |det J| of the map v[b] -> layer(v[b])[0], by autograd, for each example b."""
    out = []
    for b in range(v.shape[0]):
        shape = (1,) + tuple(v.shape[1:])
        jac = torch.autograd.functional.jacobian(lambda x: layer(x.view(shape))[0].flatten(), v[b].flatten())
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def check_invertible_with_exact_log_det(layer, v):
    z, log_det = layer(v)
    assert z.shape == v.shape and log_det.shape == (v.shape[0],)
    torch.testing.assert_close(layer.inverse(z), v, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(log_det, log_abs_det_jacobian(layer, v), atol=1e-9, rtol=1e-9)


def random_mixture(shape, num_mixtures, seed, dtype):
    generator = torch.Generator().manual_seed(seed)
    params = torch.randn(shape + (mixture_num_params(num_mixtures),), generator=generator, dtype=dtype)
    x = 3 * torch.randn(shape, generator=generator, dtype=dtype)
    return x, params


# The inverse's stopping rule (its stated accuracy, see `mixture_logistic_cdf_inverse`): |y(x) - y| <= 4 eps (|y| + 1)
# or x within 4 ulps of the root.
SOLVER_ULPS = 4


def mixture_path_roundings(num_mixtures):
    """Roundings of u = eps / 2 on the path from (x, params) to y in `mixture_logistic_cdf`, each transcendental
    function (at most 1 ulp in torch's vectorized math) counted as two: the log-softmax of the weights (K + 6), the
    standardisation (4), the log-sigmoid (6), the K-term log-sum-exp (K + 7), the difference (1), the bounded scale
    and its product (5) and the shift (1)."""
    return 2 * num_mixtures + 30


# ------------------------------------------------------------------------------------ elementwise transform


def test_mixture_cdf_log_det_is_the_derivative():
    x, params = random_mixture((200,), 5, seed=0, dtype=torch.float64)
    x = torch.cat([x, torch.tensor([-60.0, -25.0, 25.0, 60.0], dtype=torch.float64)])
    params = torch.cat([params, params[:4]])
    x.requires_grad_(True)
    y, log_det = mixture_logistic_cdf(x, params, 5)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(log_det, dy_dx.log(), atol=1e-10, rtol=1e-10)
    assert torch.isfinite(y).all() and (dy_dx > 0).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mixture_cdf_inverse(dtype):
    x, params = random_mixture((2000,), 7, seed=1, dtype=dtype)
    y, _ = mixture_logistic_cdf(x, params, 7)
    x_back = mixture_logistic_cdf_inverse(y, params, 7)
    x64, params64 = x.double().requires_grad_(True), params.double().requires_grad_(True)
    dy_dx, dy_dparams = torch.autograd.grad(mixture_logistic_cdf(x64, params64, 7)[0].sum(), [x64, params64])
    kappa = dy_dx.abs() * x64.abs() + (dy_dparams.abs() * params64.abs()).sum(-1)  # |dy| per relative perturbation
    eps, y64 = torch.finfo(dtype).eps, y.double()
    # First order: y and the solver's residual are each off by the path's r roundings of u = eps / 2 relative to
    # (x, params) (r eps in all), plus the solver's stated accuracy; back to x through dy/dx.
    tol = (eps * (mixture_path_roundings(7) * kappa + SOLVER_ULPS * (y64.abs() + 1)) / dy_dx
           + (SOLVER_ULPS + 1) * eps * x64.abs())
    assert ((x_back.double() - x64.detach()).abs() <= tol).all()


def test_mixture_cdf_inverse_tails_and_monotonicity():
    _, params = random_mixture((1,), 4, seed=2, dtype=torch.float64)
    x = torch.linspace(-80, 80, 2001, dtype=torch.float64)
    y, _ = mixture_logistic_cdf(x, params.expand(len(x), -1), 4)
    assert (y.diff() > 0).all()
    torch.testing.assert_close(mixture_logistic_cdf_inverse(y, params.expand(len(x), -1), 4), x, atol=1e-9, rtol=1e-9)


def test_mixture_cdf_inverse_gradient():
    x, params = random_mixture((6,), 3, seed=3, dtype=torch.float64)
    y, _ = mixture_logistic_cdf(x, params, 3)
    y.requires_grad_(True)
    params.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y, p: mixture_logistic_cdf_inverse(y, p, 3), (y, params))


def test_mixture_cdf_initial_bias():
    bias = torch.empty(2 * mixture_num_params(1))
    init_mixture_bias(bias, 1)
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    y, log_det = mixture_logistic_cdf(x, bias.view(2, -1)[0].double().expand(11, -1), 1)
    torch.testing.assert_close(y, x)  # one component: exactly the identity
    torch.testing.assert_close(log_det, torch.zeros_like(x))
    bias = torch.empty(mixture_num_params(4))
    init_mixture_bias(bias, 4)
    assert bias[4:8].unique().numel() == 4  # distinct means, so the components can separate
    with pytest.raises(ValueError, match="multiple"):
        init_mixture_bias(torch.empty(7), 4)
    with pytest.raises(ValueError, match="last axis"):
        mixture_logistic_cdf(x, torch.zeros(11, 5, dtype=torch.float64), 4)


# ------------------------------------------------------------------------------------ layers


def test_channel_mixing_starts_as_rotation_and_inverts():
    torch.manual_seed(0)
    mixing = ChannelMixing(3).double()
    weight = mixing.weight()
    torch.testing.assert_close(weight @ weight.T, torch.eye(3, dtype=torch.float64))
    v = torch.randn(2, 4, 3, dtype=torch.float64)
    check_invertible_with_exact_log_det(perturbed(mixing), v)
    check_invertible_with_exact_log_det(perturbed(ChannelMixing(1)), torch.randn(2, 4, 1, dtype=torch.float64))


def test_reverse_sequence():
    v = torch.randn(2, 3, 2, dtype=torch.float64)
    check_invertible_with_exact_log_det(ReverseSequence(), v)
    torch.testing.assert_close(ReverseSequence()(v)[0][:, 0], v[:, -1])


def test_lstm_step_matches_nn_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    expected, _ = lstm(x)
    state, steps = None, []
    for l in range(4):
        out, state = lstm_step(lstm, x[:, l], state)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), expected)


@pytest.mark.parametrize("width", [1, 3])
def test_autoregressive_layer(width):
    torch.manual_seed(0)
    layer = perturbed(AutoregressiveMixtureLayer(width, hidden_size=8, num_layers=2, num_mixtures=3))
    v = torch.randn(2, 3, width, dtype=torch.float64)
    check_invertible_with_exact_log_det(layer, v)
    # Autoregressive in the order (position, value): z[:, l, d] ignores everything after (l, d).
    jac = torch.autograd.functional.jacobian(lambda x: layer(x.view(1, 3, width))[0].flatten(), v[0].flatten())
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))


@pytest.mark.parametrize("split", ["channels", "sequence"])
def test_coupling_layer(split):
    torch.manual_seed(0)
    mask = torch.zeros(3, 3)
    if split == "channels":
        mask[:, :1] = 1
    else:
        mask[::2] = 1
    layer = perturbed(CouplingMixtureLayer(mask, hidden_size=8, num_layers=2, num_mixtures=3))
    v = torch.randn(2, 3, 3, dtype=torch.float64)
    check_invertible_with_exact_log_det(layer, v)
    z, _ = layer(v)
    torch.testing.assert_close(z[:, mask.bool()], v[:, mask.bool()])  # conditioning values pass unchanged


# ------------------------------------------------------------------------------------ flows


FLOWS = {
    "ar": lambda: AutoregressiveFlow(3, 2, hidden_size=8, num_layers=2, num_mixtures=3, num_steps=2),
    "ar_width1": lambda: AutoregressiveFlow(3, 1, hidden_size=8, num_layers=1, num_mixtures=2, num_steps=2),
    "coupling": lambda: CouplingFlow(3, 3, hidden_size=8, num_layers=2, num_mixtures=3, num_steps=3),
    "coupling_width5": lambda: CouplingFlow(2, 5, hidden_size=6, num_layers=2, num_mixtures=2, num_steps=2),
    "coupling_width1": lambda: CouplingFlow(4, 1, hidden_size=8, num_layers=2, num_mixtures=3, num_steps=3),
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_flow_inverts_with_exact_log_det(name):
    torch.manual_seed(0)
    flow = perturbed(FLOWS[name]())
    v = torch.randn(2, flow.seq_len, flow.width, dtype=torch.float64)
    check_invertible_with_exact_log_det(flow, v)
    z, log_det = flow(v)
    expected = -0.5 * (z**2).sum((1, 2)) - 0.5 * z[0].numel() * math.log(2 * math.pi) + log_det
    torch.testing.assert_close(flow.log_prob(v), expected)


@pytest.mark.parametrize("name", ["ar", "coupling_width1"])
def test_flow_starts_near_identity_and_every_parameter_learns(name):
    torch.manual_seed(0)
    flow = FLOWS[name]().double()
    v = torch.randn(4, flow.seq_len, flow.width, dtype=torch.float64)
    z, log_det = flow(v)
    # The mixings are rotations and every mixture starts with spread means of one logistic: log|det| is small.
    assert log_det.abs().max() < 0.2 * v[0].numel()
    (-flow.log_prob(v).mean()).backward()
    for param_name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), param_name
        if "out" in param_name:
            assert p.grad.abs().sum() > 0, param_name


def test_single_component_flows_start_as_exact_identity():
    v = torch.randn(2, 3, 2, dtype=torch.float64)
    for flow in (AutoregressiveFlow(3, 2, 8, 1, num_mixtures=1), CouplingFlow(3, 2, 8, 1, num_mixtures=1, num_steps=1)):
        z, log_det = flow.double()(v)
        torch.testing.assert_close(z, v)
        torch.testing.assert_close(log_det, torch.zeros(2, dtype=torch.float64))


def test_autoregressive_density_integrates_to_one():
    torch.manual_seed(0)
    flow = perturbed(AutoregressiveFlow(1, 1, hidden_size=6, num_layers=2, num_mixtures=4, num_steps=2), scale=0.5)
    x = torch.linspace(-60, 60, 24001, dtype=torch.float64)
    density = flow.log_prob(x.view(-1, 1, 1)).exp()
    assert density[0] < 1e-12 and density[-1] < 1e-12
    assert abs(torch.trapezoid(density, x).item() - 1) < 1e-6


def test_coupling_density_on_two_positions_integrates_to_one():
    torch.manual_seed(0)
    flow = perturbed(CouplingFlow(2, 1, hidden_size=4, num_layers=1, num_mixtures=3, num_steps=2))
    # The trapezoid rule converges fast for smooth densities that vanish at the ends of the grid.
    x = torch.linspace(-15, 15, 201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(x, x, indexing="ij"), dim=-1).view(-1, 2, 1)
    with torch.no_grad():
        density = flow.log_prob(grid).exp().view(len(x), len(x))
    assert density[0].max() < 1e-9 and density[:, -1].max() < 1e-9
    assert abs(torch.trapezoid(torch.trapezoid(density, x), x).item() - 1) < 1e-6


@pytest.mark.parametrize("name", ["ar", "coupling_width1"])
def test_sample_is_reproducible(name):
    torch.manual_seed(0)
    flow = perturbed(FLOWS[name]())
    first = flow.sample(3, generator=torch.Generator().manual_seed(7))
    again = flow.sample(3, generator=torch.Generator().manual_seed(7))
    other = flow.sample(3, generator=torch.Generator().manual_seed(8))
    assert first.shape == (3, flow.seq_len, flow.width) and first.dtype == torch.float64
    assert torch.equal(first, again) and not torch.equal(first, other)
    z = torch.randn(3, flow.seq_len, flow.width, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(flow(first)[0], z, atol=1e-9, rtol=1e-9)


def float32_round_trip_tolerance(flow, v, num_mixtures, longest_dot_product, lam=6.0):
    """
    A first-order bound on |flow(flow.inverse(z)) - z| in float32, per element of z, from the sensitivities of
    the float64 flow at v.

    Rounding: both directions compute the conditioners and the mixture CDFs in float32. A dot product of length n
    is exact for weights off by n roundings of u = eps / 2 and the CDF's r roundings act on its inputs likewise, so
    each direction perturbs every weight by n + r roundings, and every layer input rounds once. Summed as
    independent, mean-zero errors (Higham & Mary, 2019), |error| <= lam u sqrt(sum_k m_k c_k^2) except with
    probability 2 exp(-lam^2 / 2) (3e-8 for lam = 6), c_k being the sensitivity of z to a relative change of
    quantity k and m_k its number of roundings.

    The solver, worst case (its stated accuracy): each mixture layer's output within 4 eps (|y| + 1) of its target
    or its input within 4 ulps of the root; and z itself rounds once.
    """
    eps = torch.finfo(torch.float32).eps
    flow = copy.deepcopy(flow).double()
    weights = list(flow.parameters())
    inputs, outputs = [], []
    h = v.double().requires_grad_(True)
    for layer in flow.layers:
        is_mixture = isinstance(layer, (AutoregressiveMixtureLayer, CouplingMixtureLayer))
        if is_mixture:
            inputs.append(h)
        h = layer(h)[0]
        if is_mixture:
            outputs.append(h)
    weight_roundings = 2 * (longest_dot_product + mixture_path_roundings(num_mixtures))
    tol = torch.empty_like(h)
    for index in np.ndindex(*h.shape):
        grads = torch.autograd.grad(h[index], [*inputs, *outputs, *weights], retain_graph=True, allow_unused=True)
        d_in, d_out, d_weights = grads[: len(inputs)], grads[len(inputs) : -len(weights)], grads[-len(weights) :]
        squares = weight_roundings * sum(((g * w) ** 2).sum() for g, w in zip(d_weights, weights) if g is not None)
        squares = squares + 2 * sum(((g * x) ** 2).sum() for g, x in zip(d_in, inputs))
        solver = SOLVER_ULPS * (sum((g * x).abs().sum() for g, x in zip(d_in, inputs))
                                + sum((g.abs() * (y.abs() + 1)).sum() for g, y in zip(d_out, outputs)))
        tol[index] = lam * eps / 2 * squares.sqrt() + eps * (solver + h[index].abs())
    return tol.detach()


@pytest.mark.parametrize("name", ["ar", "coupling"])
def test_float32_round_trip(name):
    torch.manual_seed(0)
    flow = perturbed(FLOWS[name]()).float()
    v = flow.sample(4, generator=torch.Generator().manual_seed(0))
    z = torch.randn(4, flow.seq_len, flow.width, generator=torch.Generator().manual_seed(0))
    assert v.dtype == torch.float32
    error = (flow(v)[0] - z).abs().double()
    # Rounding and the solver's stated accuracy through the sensitivities (see the helper); both flows have 3
    # logistics, and their longest dot products are the AR head's 16 units and the coupling output's 2 x 8.
    assert (error <= float32_round_trip_tolerance(flow, v, num_mixtures=3, longest_dot_product=16)).all()


def test_flow_without_layers_is_the_standard_normal():
    flow = DensityFlow(3, 2, [])
    v = flow.sample(5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(v, torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(0)))
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(v).sum((1, 2))
    torch.testing.assert_close(flow.log_prob(v), expected)
    torch.testing.assert_close(flow.inverse(flow(v)[0]), v)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    for flow in (AutoregressiveFlow(4, 2, 8, 1, 2, input_dropout=0.5), CouplingFlow(4, 2, 8, 2, 2, 2, dropout=0.5)):
        flow = perturbed(flow)
        v = torch.randn(8, 4, 2, dtype=torch.float64)
        assert torch.equal(flow.log_prob(v), flow.log_prob(v))
        flow.train()
        assert not torch.equal(flow.log_prob(v), flow.log_prob(v))


def test_bad_input_raises():
    flow = CouplingFlow(3, 2, 8, 1, 2, 1)
    with pytest.raises(ValueError, match=r"\(batch, 3, 2\)"):
        flow(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="num_samples"):
        flow.sample(0)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        CouplingFlow(1, 1, 8, 1, 2, 2)
    with pytest.raises(ValueError, match="num_steps"):
        AutoregressiveFlow(3, 2, 8, 1, 2, num_steps=0)
    with pytest.raises(ValueError, match="input_dropout"):
        AutoregressiveFlow(3, 2, 8, 1, 2, input_dropout=1.0)
