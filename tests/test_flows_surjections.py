# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Argmax surjections, their probabilistic inverses and Cartesian encodings, against autograd Jacobians,
numerical integration of q(v | x) and sampling."""

import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from hf_multinomial.flows.cartesian import CartesianEncoding
from hf_multinomial.flows.gumbel import gumbel_log_prob
from hf_multinomial.flows.surjections import (
    ARGMAX_INVERSES,
    GumbelInverse,
    GumbelThresholdingInverse,
    ThresholdingInverse,
    TransformedGaussianInverse,
    UniformDequantization,
    VariationalDequantization,
    argmax_decode,
    gumbel_threshold,
    gumbel_threshold_inverse,
    make_argmax_inverse,
    threshold,
    threshold_inverse,
)

ARGMAX_NAMES = ["thresholding", "gumbel", "gumbel_thresholding"]
ALL_NAMES = ARGMAX_NAMES + ["uniform_dequantization", "variational_dequantization"]


def gauss_legendre(edges, order: int = 8):
    """Composite Gauss-Legendre nodes and weights (float64 tensors) over consecutive intervals of `edges`."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.asarray(edges, dtype=np.float64)
    half = 0.5 * np.diff(edges)[:, None]
    nodes = (half * x + 0.5 * (edges[1:] + edges[:-1])[:, None]).ravel()
    return torch.from_numpy(nodes), torch.from_numpy((half * w).ravel())


def moderate_params(inverse, generator, shape=()):
    """Conditioner outputs of moderate size, float64: means in (-1, 1), log-scales in (-0.5, 0.3), logits in
    (-1.5, 1.5)."""
    params = torch.rand(*shape, inverse.num_params, generator=generator, dtype=torch.float64)
    if isinstance(inverse, GumbelInverse):
        return 3 * params - 1.5
    if inverse.num_params == 2:  # (mean, log_scale)
        return torch.stack([2 * params[..., 0] - 1, 0.8 * params[..., 1] - 0.5], -1)
    half = inverse.num_params // 2  # M means then M log-scales
    return torch.cat([2 * params[..., :half] - 1, 0.8 * params[..., half:] - 0.5], -1)


def ks_distance(samples: np.ndarray, cdf: np.ndarray) -> float:
    n = len(samples)
    ranks = np.arange(1, n + 1) / n
    return float(max(np.max(np.abs(ranks - cdf)), np.max(np.abs(ranks - 1.0 / n - cdf))))


# ----------------------------------------------------------------------------------------------------------------
# Cartesian encodings


@pytest.mark.parametrize("base", [2, 3, 4, 6, 16, None])
def test_cartesian_round_trip_for_every_num_classes(base):
    for num_classes in range(2, 257):
        encoding = CartesianEncoding(num_classes, base)
        m = num_classes if base is None else base
        assert encoding.base == m and encoding.num_classes == num_classes
        # the fewest digits that can hold K codes
        assert m**encoding.digits >= num_classes and (encoding.digits == 1 or m ** (encoding.digits - 1) < num_classes)
        assert encoding.width_per_digit == (1 if m == 2 else m)
        assert encoding.width == encoding.digits * encoding.width_per_digit
        ids = torch.arange(num_classes)
        digits = encoding.encode(ids)
        assert digits.shape == (num_classes, encoding.digits) and digits.dtype == torch.int64
        assert digits.min() >= 0 and digits.max() < m
        assert torch.equal(encoding.decode(digits), ids)
    # most significant digit first, batch shapes kept
    assert CartesianEncoding(27, 3).encode(torch.tensor([[5, 26]])).tolist() == [[[0, 1, 2], [2, 2, 2]]]
    assert CartesianEncoding(27, 3).decode(torch.tensor([2, 2, 2])).item() == 26
    # unused codes decode to ids >= K
    assert CartesianEncoding(5, 2).decode(torch.tensor([1, 1, 1])).item() == 7


def test_cartesian_rejects_bad_ids_and_settings():
    encoding = CartesianEncoding(27, 3)
    with pytest.raises(ValueError, match="27"):
        encoding.encode(torch.tensor([0, 27, 3]))
    with pytest.raises(ValueError, match="-1"):
        encoding.encode(torch.tensor([[4, -1]]))
    with pytest.raises(ValueError, match="300"):
        CartesianEncoding(256, 16).encode(torch.tensor([300]))
    with pytest.raises(ValueError, match="integer"):
        encoding.encode(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="3"):
        encoding.decode(torch.tensor([0, 3, 0]))
    with pytest.raises(ValueError, match="shape"):
        encoding.decode(torch.tensor([0, 1]))
    for num_classes, base in [(1, None), (27, 1), (27, 0), (2.5, None)]:
        with pytest.raises(ValueError):
            CartesianEncoding(num_classes, base)


# ----------------------------------------------------------------------------------------------------------------
# Primitives


@pytest.mark.parametrize("surjection", [threshold, gumbel_threshold])
@pytest.mark.parametrize("base", [2, 3, 5])
def test_surjection_log_det_matches_autograd_jacobian(surjection, base):
    generator = torch.Generator().manual_seed(base)
    n = 12
    digits = torch.randint(0, base, (n,), generator=generator)
    shape = (n,) if base == 2 else (n, base)
    u = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
    u[0] = 12.0 * torch.sign(u[0])  # far from the others
    v, log_det = surjection(u, digits, base)
    assert log_det.shape == (n,)
    assert torch.equal(argmax_decode(v, base), digits)
    full = jacobian(lambda x: surjection(x, digits, base)[0], u)
    if base == 2:
        reference = torch.log(torch.diagonal(full).abs())
    else:
        blocks = torch.stack([full[i, :, i, :] for i in range(n)])
        # each digit's values depend only on that digit's u
        assert full.abs().sum().item() == pytest.approx(blocks.abs().sum().item())
        reference = torch.linalg.slogdet(blocks).logabsdet
    torch.testing.assert_close(log_det, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "surjection, inverse", [(threshold, threshold_inverse), (gumbel_threshold, gumbel_threshold_inverse)]
)
@pytest.mark.parametrize("base", [2, 3, 5])
def test_surjection_inverse_recovers_u(surjection, inverse, base):
    generator = torch.Generator().manual_seed(10 + base)
    digits = torch.randint(0, base, (64,), generator=generator)
    u = torch.randn((64,) if base == 2 else (64, base), generator=generator, dtype=torch.float64) * 2
    torch.testing.assert_close(inverse(surjection(u, digits, base)[0], digits, base), u, rtol=1e-7, atol=1e-7)


def test_primitives_check_shapes():
    with pytest.raises(ValueError, match="shape"):
        threshold(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="shape"):
        gumbel_threshold(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="base"):
        argmax_decode(torch.zeros(4), 1)


# ----------------------------------------------------------------------------------------------------------------
# Inverses: layout, decoding, exactness


@pytest.mark.parametrize("base", [2, 3, 27])
def test_param_layouts(base):
    layout = {
        "thresholding": (2 if base == 2 else 2 * base, 1 if base == 2 else base),
        "gumbel": (1 if base == 2 else base, 1 if base == 2 else base),
        "gumbel_thresholding": (2 if base == 2 else 2 * base, 1 if base == 2 else base),
        "uniform_dequantization": (0, 1),
        "variational_dequantization": (2, 1),
    }
    assert set(layout) == set(ARGMAX_INVERSES)
    for name, (num_params, width) in layout.items():
        inverse = make_argmax_inverse(name, base)
        assert (inverse.base, inverse.num_params, inverse.width_per_digit) == (base, num_params, width)
        assert CartesianEncoding(base).width_per_digit == make_argmax_inverse("gumbel", base).width_per_digit


def tie_prone_params(name, base, digits):
    """Parameters that, without the one-ulp guard, round pushed values onto v_x (or a bit's magnitude to 0, or a
    dequantized value onto digit + 1) in float32."""
    shape = (*digits.shape, make_argmax_inverse(name, base).num_params)
    if name == "uniform_dequantization":
        return None
    if name == "variational_dequantization":
        return torch.stack([torch.full(digits.shape, 40.0), torch.full(digits.shape, -3.0)], -1)
    if base == 2:
        return torch.full(shape, -200.0) if name != "gumbel" else 200.0 * (2.0 * digits - 1).unsqueeze(-1)
    if name == "gumbel":
        return torch.where(torch.nn.functional.one_hot(digits, base).bool(), -100.0, 100.0)
    # x's value far below the others: every other value is pushed to within 1e-17 of v_x
    means = torch.where(torch.nn.functional.one_hot(digits, base).bool(), -40.0, 40.0)
    return torch.cat([means, torch.full_like(means, -3.0)], -1)


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("base", [2, 3, 5, 27])
def test_inverse_always_decodes_to_its_digits(name, base):
    generator = torch.Generator().manual_seed(base)
    inverse = make_argmax_inverse(name, base)
    digits = torch.randint(0, base, (32, 16, 3), generator=generator)
    settings = [torch.randn(32, 16, 3, inverse.num_params, generator=generator) * scale for scale in (1.0, 8.0)]
    settings.append(tie_prone_params(name, base, digits))
    for params in settings:
        if inverse.num_params > 0:
            params.requires_grad_(True)
        for _ in range(3):
            v, log_q = inverse(digits, params, generator=generator)
            assert v.shape == (32, 16, 3 * inverse.width_per_digit) and v.dtype == torch.float32
            assert log_q.shape == (32,) and torch.isfinite(log_q).all()
            assert torch.equal(inverse.decode(v), digits)
        if inverse.num_params > 0:  # and the reparametrization gradients stay finite
            (v.sum() + log_q.sum()).backward()
            assert torch.isfinite(params.grad).all()


@pytest.mark.parametrize("inverse_cls", [ThresholdingInverse, GumbelThresholdingInverse, VariationalDequantization])
@pytest.mark.parametrize("base", [2, 3, 5])
def test_gaussian_inverses_log_q_matches_change_of_variables(inverse_cls, base):
    """log q(v | x) = log N(u) - log|det dv/du| with u recovered from v and the Jacobian from autograd."""
    generator = torch.Generator().manual_seed(20 + base)
    inverse = inverse_cls(base)
    digits = torch.randint(0, base, (3, 2, 2), generator=generator)
    params = torch.randn(3, 2, 2, inverse.num_params, generator=generator, dtype=torch.float64)
    v, log_q = inverse(digits, params, generator=generator)
    values = inverse._split(v)
    if inverse_cls is VariationalDequantization:
        r = values - digits
        u = torch.log(r) - torch.log1p(-r)
        mean, log_scale = params[..., 0], params[..., 1]

        def to_v(u):
            return digits + torch.sigmoid(u)

    else:
        if inverse_cls is ThresholdingInverse:
            surjection, surjection_inverse = threshold, threshold_inverse
        else:
            surjection, surjection_inverse = gumbel_threshold, gumbel_threshold_inverse
        u = surjection_inverse(values, digits, base)
        mean, log_scale = (params[..., 0], params[..., 1]) if base == 2 else (params[..., :base], params[..., base:])

        def to_v(u):
            return surjection(u, digits, base)[0]

    torch.testing.assert_close(to_v(u), values)
    log_normal = torch.distributions.Normal(mean, torch.exp(log_scale)).log_prob(u).reshape(3, -1).sum(-1)
    for b in range(3):
        full = jacobian(lambda x: to_v(torch.cat([u[:b], x.unsqueeze(0), u[b + 1 :]]))[b].reshape(-1), u[b])
        log_det = torch.linalg.slogdet(full.reshape(v[b].numel(), -1)).logabsdet
        torch.testing.assert_close(log_q[b], log_normal[b] - log_det, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(inverse.log_prob(v, digits, params), log_q, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["thresholding", "gumbel_thresholding", "variational_dequantization"])
@pytest.mark.parametrize("base", [2, 5])
def test_transform_is_the_bijection_behind_the_gaussian_draw(name, base):
    """`transform(u, digits)` is the map `forward` applies to its Gaussian draw u: the same generator gives the same v,
    and log q(v | x) = log N(u) - log|det dv/du|. (A conditional flow's u can then stand in for the Gaussian.)"""
    inverse = make_argmax_inverse(name, base)
    assert isinstance(inverse, TransformedGaussianInverse)
    generator = torch.Generator().manual_seed(70 + base)
    digits = torch.randint(0, base, (3, 4, 2), generator=generator)
    params = torch.randn(3, 4, 2, inverse.num_params, generator=generator, dtype=torch.float64)
    v, log_q = inverse(digits, params, generator=torch.Generator().manual_seed(1))
    width = inverse.width_per_digit
    mean, log_scale = (params[..., 0], params[..., 1]) if width == 1 else (params[..., :width], params[..., width:])
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u = (mean + torch.exp(log_scale) * eps).reshape(v.shape)
    v_transformed, log_det = inverse.transform(u, digits)
    assert torch.equal(v_transformed, v) and log_det.shape == (3,)
    log_normal = torch.distributions.Normal(mean, torch.exp(log_scale)).log_prob(mean + torch.exp(log_scale) * eps)
    torch.testing.assert_close(log_normal.reshape(3, -1).sum(-1) - log_det, log_q)
    with pytest.raises(ValueError, match="shape"):
        inverse.transform(u[..., :-1], digits)


@pytest.mark.parametrize("base", [2, 3, 5])
def test_gumbel_inverse_is_gumbels_conditioned_on_the_argmax(base):
    """q(v | x) = prod_i Gumbel(v_i | phi_i) / P(argmax = x) on {argmax v = x}: log p(v) - log q(v | x) is
    log softmax(phi)_x for every draw (for base 2, the Logistic(phi) of the difference and log sigmoid(+-phi))."""
    generator = torch.Generator().manual_seed(30 + base)
    inverse = GumbelInverse(base)
    digits = torch.randint(0, base, (256, 4, 2), generator=generator)
    params = 2 * torch.randn(256, 4, 2, inverse.num_params, generator=generator, dtype=torch.float64)
    v, log_q = inverse(digits, params, generator=generator)
    if base == 2:
        phi = params[..., 0]
        log_p = torch.distributions.TransformedDistribution(
            torch.distributions.Uniform(torch.zeros_like(phi), torch.ones_like(phi)),
            [torch.distributions.SigmoidTransform().inv, torch.distributions.AffineTransform(phi, 1.0)],
        ).log_prob(v)
        log_mass = torch.nn.functional.logsigmoid((2 * digits - 1) * phi)
    else:
        log_p = gumbel_log_prob(v.reshape(256, 4, 2, base), params).sum(-1)
        log_mass = torch.log_softmax(params, -1).gather(-1, digits.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(log_p.reshape(256, -1).sum(-1) - log_q, log_mass.reshape(256, -1).sum(-1))


@pytest.mark.parametrize("name", ARGMAX_NAMES)
def test_binary_inverse_integrates_to_one_and_matches_its_samples(name):
    """K = 2, one value per bit: q(v | x) integrates to 1 over the bit's half-line, and forward samples follow it."""
    generator = torch.Generator().manual_seed(40)
    inverse = make_argmax_inverse(name, 2)
    nodes, weights = gauss_legendre(np.concatenate([[-40.0, -25.0], np.linspace(-10.0, math.log(80.0), 41)]), 16)
    for bit in (0, 1):
        params = moderate_params(inverse, generator)
        sign = 2 * bit - 1

        def log_q(v):
            n = v.numel()
            digits = torch.full((n, 1, 1), bit)
            return inverse.log_prob(v.reshape(n, 1, 1), digits, params.expand(n, 1, 1, -1))

        magnitude = torch.exp(nodes)  # v = sign * exp(s)
        mass = (weights * magnitude * torch.exp(log_q(sign * magnitude))).sum().item()
        assert abs(mass - 1.0) < 1e-6, mass
        assert torch.isneginf(log_q(-sign * magnitude[::50])).all()  # nothing on the other side
        # forward samples against the numerically integrated CDF of |v|
        digits = torch.full((20000, 1, 1), bit)
        samples, sample_log_q = inverse(digits, params.expand(20000, 1, 1, -1), generator=generator)
        torch.testing.assert_close(sample_log_q, log_q(samples), rtol=1e-9, atol=1e-9)
        grid = torch.exp(torch.linspace(-40.0, math.log(80.0), 40001, dtype=torch.float64))
        density = torch.exp(log_q(sign * grid)).numpy()
        grid = grid.numpy()
        cdf = np.concatenate([[0.0], np.cumsum(np.diff(grid) * 0.5 * (density[1:] + density[:-1]))])
        observed = np.sort((sign * samples).reshape(-1).numpy())
        assert observed[0] > 0
        assert ks_distance(observed, np.interp(observed, grid, cdf)) < 1.95 / math.sqrt(20000)


@pytest.mark.parametrize("name", ARGMAX_NAMES)
def test_base3_inverse_integrates_to_one_and_matches_its_samples(name):
    """K = 3, width 3: q(v | x) integrates to 1 over {argmax v = x}, and forward sample means match its moments.

    The region is a box in (t, d_1, d_2) = (v_x, v_x - v_i, v_x - v_j) (a shear, Jacobian 1), with d = exp(s) so that
    the thin layers next to the boundary d = 0 get as many nodes as they need."""
    generator = torch.Generator().manual_seed(50)
    inverse = make_argmax_inverse(name, 3)
    s_nodes, s_weights = gauss_legendre(np.concatenate([[-30.0, -15.0], np.linspace(-6.0, math.log(45.0), 8)]), 8)
    d_nodes, d_weights = torch.exp(s_nodes), s_weights * torch.exp(s_nodes)
    for x in range(3):
        params = moderate_params(inverse, generator)
        if name == "gumbel":
            centre = torch.logsumexp(params, -1).item()
            t_edges = centre + np.concatenate([np.linspace(-4.0, 8.0, 8), [14.0, 22.0, 34.0]])  # Gumbel(centre)
        else:
            centre, scale = params[x].item(), math.exp(params[3 + x].item())
            t_edges = np.linspace(centre - 9 * scale, centre + 9 * scale, 9)  # N(centre, scale)
        t_nodes, t_weights = gauss_legendre(t_edges, 8)
        t, d1, d2 = torch.meshgrid(t_nodes, d_nodes, d_nodes, indexing="ij")
        weight = (t_weights[:, None, None] * d_weights[:, None] * d_weights).reshape(-1)
        others = [i for i in range(3) if i != x]
        v = torch.empty(t.numel(), 3, dtype=torch.float64)
        v[:, x], v[:, others[0]], v[:, others[1]] = t.reshape(-1), (t - d1).reshape(-1), (t - d2).reshape(-1)
        n = v.shape[0]
        density = torch.exp(inverse.log_prob(v.reshape(n, 1, 3), torch.full((n, 1, 1), x), params.expand(n, 1, 1, -1)))
        mass = (weight * density).sum().item()
        assert abs(mass - 1.0) < 1e-4, (x, mass)
        # the first two moments of every coordinate against forward samples
        samples, _ = inverse(torch.full((20000, 1, 1), x), params.expand(20000, 1, 1, -1), generator=generator)
        samples = samples.reshape(-1, 3)
        assert (samples.argmax(-1) == x).all()
        for power in (1, 2):
            expected = ((weight * density)[:, None] * v**power).sum(0)
            observed = (samples**power).mean(0)
            error = (samples**power).std(0) / math.sqrt(20000)
            assert ((observed - expected).abs() < 5 * error).all(), (power, observed, expected)


def test_dequantizations_decode_and_their_densities():
    generator = torch.Generator().manual_seed(60)
    for base in (2, 5, 27):
        digits = torch.randint(0, base, (16, 8, 3), generator=generator)
        uniform = UniformDequantization(base)
        v, log_q = uniform(digits, generator=generator)
        assert torch.equal(log_q, torch.zeros(16)) and v.shape == (16, 8, 3)
        assert ((v >= digits) & (v < digits + 1)).all() and torch.equal(uniform.decode(v), digits)
        v64, _ = uniform(digits, torch.zeros(16, 8, 3, 0, dtype=torch.float64), generator=generator)
        assert v64.dtype == torch.float64
        assert torch.equal(uniform.log_prob(v64, digits), torch.zeros(16, dtype=torch.float64))
        variational = VariationalDequantization(base)
        params = torch.randn(16, 8, 3, 2, generator=generator)
        v, log_q = variational(digits, params, generator=generator)
        assert ((v >= digits) & (v < digits + 1)).all() and torch.equal(variational.decode(v), digits)
        # decode clamps values outside [0, base) from a density model
        assert variational.decode(torch.tensor([[[-0.5, base + 3.0]]])).tolist() == [[[0, base - 1]]]
        assert torch.isneginf(variational.log_prob(v + 1.0 - (digits == base - 1) * 2.0, digits, params)).all()
    # the variational density integrates to 1 over (x, x + 1)
    inverse = VariationalDequantization(3)
    params = torch.tensor([0.7, -0.4], dtype=torch.float64)
    r, w = gauss_legendre(np.linspace(0.0, 1.0, 41), 16)
    n = r.numel()
    log_q = inverse.log_prob((2 + r).reshape(n, 1, 1), torch.full((n, 1, 1), 2), params.expand(n, 1, 1, 2))
    assert abs((w * torch.exp(log_q)).sum().item() - 1.0) < 1e-8


def test_inverses_reject_bad_inputs():
    inverse = ThresholdingInverse(5)
    digits = torch.zeros(2, 3, 1, dtype=torch.long)
    params = torch.zeros(2, 3, 1, 10)
    digits[1, 2, 0] = 7
    with pytest.raises(ValueError, match="7"):
        inverse(digits, params)
    digits[1, 2, 0] = -2
    with pytest.raises(ValueError, match="-2"):
        inverse(digits, params)
    digits[1, 2, 0] = 0
    with pytest.raises(ValueError, match=r"\(2, 3, 1, 10\)"):
        inverse(digits, torch.zeros(2, 3, 1, 4))
    with pytest.raises(ValueError, match="None"):
        inverse(digits, None)
    with pytest.raises(ValueError, match="integer"):
        inverse(digits.float(), params)
    with pytest.raises(ValueError, match="shape"):
        inverse.decode(torch.zeros(2, 3, 7))
    with pytest.raises(ValueError, match="bogus"):
        make_argmax_inverse("bogus", 5)
    with pytest.raises(ValueError, match="base"):
        make_argmax_inverse("gumbel", 1)
