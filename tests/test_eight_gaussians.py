"""The quantized eight-Gaussians toy: sampling against the exact pmf, its entropy two ways, the Discrete Flow baseline
(a bijection of {0..90}^2, exact pmf, straight-through gradient) and the toy script."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from hf_multinomial.data.eight_gaussians import (
    eight_gaussians_entropy,
    eight_gaussians_means,
    eight_gaussians_pmf,
    quantize_eight_gaussians,
    sample_eight_gaussians,
)
from hf_multinomial.flows.discrete_flow import DiscreteFlow

K = 91
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def samples():
    return sample_eight_gaussians(200_000, generator=torch.Generator().manual_seed(1234))


def simpson(f, a: float, b: float, n: int) -> float:
    """Composite Simpson's rule of `f` on [a, b] with `n` (even) subintervals, float64."""
    x = torch.linspace(a, b, n + 1, dtype=torch.float64)
    w = torch.ones(n + 1, dtype=torch.float64)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return float((w * f(x)).sum() * (b - a) / (3 * n))


def test_pmf_matches_numerical_integration_of_each_cell():
    # Each component is a product of 1-D Gaussians, so the table is (1/8) sum_k m_k(x_1) m_k(x_2) with 1-D cell
    # masses m, here integrated numerically (no erf); the edge cells also hold the clipped tails (to +-6, where the
    # remaining mass is below 1e-140).
    means = eight_gaussians_means()
    edges = [(-6.0, -2.225)] + [((c - 45.5) / 20, (c - 44.5) / 20) for c in range(1, K - 1)] + [(2.225, 6.0)]
    masses = {}
    for m in sorted(set(means.flatten().tolist())):
        density = lambda x, m=m: torch.exp(-0.5 * ((x - m) / 0.1) ** 2) / (0.1 * math.sqrt(2 * math.pi))
        cells = [simpson(density, a, b, 20000 if b - a > 1 else 512) for a, b in edges]
        masses[m] = torch.tensor(cells, dtype=torch.float64)
    reference = sum(torch.outer(masses[mx], masses[my]) for mx, my in means.tolist()) / 8
    pmf = eight_gaussians_pmf()
    assert pmf.shape == (K, K) and pmf.dtype == torch.float64
    assert abs(pmf.sum().item() - 1.0) < 1e-12
    assert (pmf - reference).abs().max() < 1e-12
    big = reference > 1e-30  # relative precision even far in the tails
    assert ((pmf[big] - reference[big]) / reference[big]).abs().max() < 1e-8


def test_quantization_rounds_and_clips():
    x = torch.tensor([[0.0, 0.024], [0.026, -0.026], [-2.24, 2.3], [-10.0, 10.0]], dtype=torch.float64)
    assert quantize_eight_gaussians(x).tolist() == [[45, 45], [46, 44], [0, 90], [0, 90]]


def test_samples_follow_the_exact_pmf(samples):
    n = samples.shape[0]
    assert samples.shape == (n, 2) and samples.dtype == torch.int64
    assert samples.min() >= 0 and samples.max() < K
    counts = torch.bincount(samples[:, 0] * K + samples[:, 1], minlength=K * K).double()
    p = eight_gaussians_pmf().flatten()
    # No sample in a cell the exact table calls impossible.
    assert counts[p < 1e-15].sum() == 0
    # Per cell: |frequency - p| against the binomial standard deviation, where the normal approximation holds.
    ok = n * p >= 20
    z = (counts[ok] / n - p[ok]) / torch.sqrt(p[ok] * (1 - p[ok]) / n)
    assert z.abs().max() < 5.0
    # Pearson chi-square over cells with expected count >= 5 plus one pooled rest cell, against its
    # normal approximation (df in the hundreds).
    big = n * p >= 5
    observed = torch.cat([counts[big], counts[~big].sum()[None]])
    expected = torch.cat([n * p[big], n * p[~big].sum()[None]])
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    df = observed.numel() - 1
    assert abs(chi2 - df) / math.sqrt(2 * df) < 4.0, (chi2, df)


def test_entropy_two_ways(samples):
    exact = eight_gaussians_entropy()
    assert abs(exact - 6.320) < 5e-4
    pmf = eight_gaussians_pmf()
    nll = -pmf[samples[:, 0], samples[:, 1]].log()
    stderr = nll.std().item() / math.sqrt(len(nll))
    assert abs(nll.mean().item() - exact) < 5 * stderr


def test_sampling_is_reproducible_and_checks_its_argument():
    a = sample_eight_gaussians(100, generator=torch.Generator().manual_seed(0))
    b = sample_eight_gaussians(100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="-1"):
        sample_eight_gaussians(-1)


def test_pmf_figure(tmp_path):
    save_pmf_figure = load_script().save_pmf_figure
    path = tmp_path / "figure.png"
    pmf = eight_gaussians_pmf()
    save_pmf_figure(str(path), [pmf, torch.full((K, K), 1.0 / K**2)], ["data", "uniform"], scale=2)
    image = Image.open(path)
    assert image.width > 2 * 2 * K and image.height > 2 * K
    with pytest.raises(ValueError, match="titles"):
        save_pmf_figure(str(path), [pmf], ["a", "b"])


# --------------------------------------------------------------------------------------------- Discrete Flow


def random_flow(seed=0):
    torch.manual_seed(seed)
    flow = DiscreteFlow(K, seq_len=2, init_std=1.0).double()
    with torch.no_grad():
        flow.base_logits.normal_()
    return flow


def grid():
    return torch.cartesian_prod(torch.arange(K), torch.arange(K))


def test_discrete_flow_is_a_bijection_of_the_grid():
    flow = random_flow()
    x = grid()
    z = flow.forward_map(x)
    assert len(torch.unique(z[:, 0] * K + z[:, 1])) == K * K
    assert torch.equal(flow.inverse_map(z), x)
    assert torch.equal(flow.forward_map(flow.inverse_map(x)), x)
    # The shifts really differ between histories (otherwise this would be a trivial test).
    assert len(torch.unique((z[:, 1] - x[:, 1]) % K)) > 10


def test_discrete_flow_pmf_is_the_base_mass_of_the_mapped_point():
    flow = random_flow()
    x = grid()
    z = flow.forward_map(x)
    log_base = torch.log_softmax(flow.base_logits.detach(), -1)
    reference = log_base[0, z[:, 0]] + log_base[1, z[:, 1]]
    with torch.no_grad():
        assert torch.allclose(flow.log_prob(x), reference, atol=1e-12)
        assert torch.allclose(flow(x), -reference, atol=1e-12)
    pmf = flow.pmf()
    assert pmf.shape == (K, K)
    assert abs(pmf.sum().item() - 1.0) < 1e-12


def test_discrete_flow_straight_through_gradient():
    # d log P / d shift logits must be the gradient of the relaxation sum_s softmax(logits / T)_s log p(x + s),
    # written here directly for one example.
    flow = random_flow()
    x = torch.tensor([[17, 80]])
    flow.log_prob(x).sum().backward()
    log_base = torch.log_softmax(flow.base_logits.detach(), -1)
    for l, logits in enumerate([flow.first_shift_logits, flow.shift_logits[0].weight[17]]):
        logits = logits.detach().clone().requires_grad_(True)
        soft = torch.softmax(logits / flow.temperature, -1)
        relaxed = (soft * log_base[l, (x[0, l] + torch.arange(K)) % K]).sum()  # the other term is constant here
        (expected,) = torch.autograd.grad(relaxed, logits)
        actual = flow.first_shift_logits.grad if l == 0 else flow.shift_logits[0].weight.grad[17]
        assert expected.abs().max() > 1e-3 and torch.allclose(actual, expected, atol=1e-10)


def test_discrete_flow_samples_follow_its_pmf():
    flow = random_flow()
    with torch.no_grad():
        flow.base_logits.mul_(3.0)  # peaked, so that counts are large
    n = 50_000
    x = flow.sample(n, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == torch.int64
    counts = torch.bincount(x[:, 0] * K + x[:, 1], minlength=K * K).double()
    p = flow.pmf().flatten()
    big = n * p >= 5
    observed = torch.cat([counts[big], counts[~big].sum()[None]])
    expected = torch.cat([n * p[big], n * p[~big].sum()[None]])
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    df = observed.numel() - 1
    assert abs(chi2 - df) / math.sqrt(2 * df) < 4.0, (chi2, df)


def test_discrete_flow_rejects_bad_ids():
    flow = DiscreteFlow(K)
    with pytest.raises(ValueError, match="91"):
        flow(torch.tensor([[3, 91]]))
    with pytest.raises(ValueError, match="shape"):
        flow(torch.tensor([1, 2]))


def test_discrete_flow_learns_the_toy():
    torch.manual_seed(0)
    flow = DiscreteFlow(K)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = flow(sample_eight_gaussians(128, generator)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    cross_entropy = -(eight_gaussians_pmf() * flow.pmf().double().log()).sum().item()
    assert cross_entropy < 7.3  # from log(91^2) = 9.02; the exact entropy is 6.32


# --------------------------------------------------------------------------------------------- the script


def load_script():
    spec = importlib.util.spec_from_file_location("toy_eight_gaussians", REPO / "scripts" / "toy_eight_gaussians.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_discrete_flow(tmp_path, capsys):
    summary = load_script().main([
        "--model", "discrete_flow", "--output_dir", str(tmp_path), "--max_train_steps", "200",
        "--num_train_samples", "30000", "--num_eval_samples", "2000",
    ])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["nll_nats"] == summary["nll_nats"] and last["model"] == "discrete_flow" and last["steps"] == 200
    assert abs(last["entropy_nats"] - 6.32) < 1e-3
    assert last["entropy_nats"] - 0.3 < last["nll_nats"] < 8.0
    assert abs(last["model_pmf_total_mass"] - 1.0) < 1e-4
    assert Path(last["plot"]).is_file() and (tmp_path / "pmf.npy").is_file()


def test_script_argmax_flow(tmp_path, capsys):
    summary = load_script().main([
        "--model", "argmax_flow", "--output_dir", str(tmp_path), "--max_train_steps", "3", "--num_train_samples",
        "2000", "--train_batch_size", "32", "--cartesian_base", "2", "--hidden_size", "16", "--context_size", "8",
        "--num_flow_steps", "1", "--num_mixtures", "2", "--num_eval_samples", "64", "--iwbo_samples", "2",
        "--pmf_samples", "1",
    ])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["model"] == "argmax_flow" and last["steps"] == 3 and last["iwbo_samples"] == 2
    assert last["nll_nats"] == summary["nll_nats"] and math.isfinite(last["elbo_nats"])
    assert math.isfinite(last["cross_entropy_exact_nats"]) and last["model_pmf_total_mass"] > 0
    assert Path(last["plot"]).is_file() and (tmp_path / "config.json").is_file()
