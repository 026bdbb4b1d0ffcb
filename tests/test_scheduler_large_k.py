"""The class-id fast paths of MultinomialScheduler (compute_loss, jump_to_start_nll, prior_kl, add_noise, step) against
an independent float64 brute-force reference, and their behaviour at a large vocabulary (K = 4096).

The reference works in probability space with explicit K x K transition matrices (their products multiplied out one
step at a time) and gets every posterior by Bayes' rule; it shares no code with the scheduler, not even its noise
schedule: 1 - alpha_t is computed from the cosine by a product of sines, without the cancellation of 1 - f(t)/f(t-1).
"""

import math

import numpy as np
import pytest
import torch

import hf_multinomial.schedulers.scheduling_multinomial as scheduling
from hf_multinomial import MultinomialScheduler

F32_EPS = 2.0**-24  # unit roundoff of float32


# ---------------------------------------------------------------- the reference


def reference_alphas(T, s=0.008):
    """(alpha_t, 1 - alpha_t) for paper steps t = 1..T of the cosine schedule f(t) = cos(((t/T + s)/(1 + s)) pi/2)."""
    theta = [((t / T + s) / (1 + s)) * math.pi / 2 for t in range(T + 1)]
    f = [math.cos(th) for th in theta]
    f[T] = 0.0
    alphas, one_minus = [], []
    for t in range(1, T + 1):
        # f(t-1) - f(t) = cos(theta_{t-1}) - cos(theta_t) = 2 sin((theta_t + theta_{t-1})/2) sin((theta_t - theta_{t-1})/2)
        drop = f[t - 1] if t == T else 2 * math.sin((theta[t] + theta[t - 1]) / 2) * math.sin((theta[t] - theta[t - 1]) / 2)
        alphas.append(f[t] / f[t - 1])
        one_minus.append(drop / f[t - 1])
    return alphas, one_minus


class Reference:
    """Q[t] = q(x_t | x_{t-1}) (row: x_{t-1}) for paper steps t = 1..T; P[t] = Q[1] ... Q[t], multiplied out."""

    def __init__(self, K, T):
        self.K, self.T = K, T
        alphas, one_minus = reference_alphas(T)
        eye, ones = np.eye(K), np.ones((K, K))
        self.Q = [None] + [a * eye + (om / K) * ones for a, om in zip(alphas, one_minus)]
        self.P = [eye]
        for t in range(1, T + 1):
            self.P.append(self.P[-1] @ self.Q[t])

    def transition(self, a, b):
        """q(x_b | x_a) for paper steps a <= b, multiplied out."""
        out = np.eye(self.K)
        for t in range(a + 1, b + 1):
            out = out @ self.Q[t]
        return out

    def posterior(self, x0_probs, xt, t, prev_t):
        """q(x_prev | x_t, x_0) (or p with x0_probs = softmax of the logits) by Bayes' rule, for scheduler indices
        t (paper step t + 1) and prev_t; x0_probs `(N, K)` torch, xt `(N,)`, t and prev_t `(N,)` integer arrays."""
        prior = torch.stack([x0_probs[n] @ torch.from_numpy(self.P[prev_t[n] + 1]) for n in range(len(xt))])
        likelihood = torch.stack(
            [torch.from_numpy(self.transition(prev_t[n] + 1, t[n] + 1)[:, xt[n]]) for n in range(len(xt))]
        )
        joint = prior * likelihood
        return joint / joint.sum(dim=1, keepdim=True)

    def losses(self, logits, x0, xt, t):
        """(compute_loss, jump_to_start_nll) per example, differentiable in `logits` `(B, K, L)` float64."""
        B, K, L = logits.shape
        probs = torch.softmax(logits, dim=1).permute(0, 2, 1).reshape(B * L, K)
        x0f, xtf, tf = x0.reshape(-1), xt.reshape(-1), np.repeat(t, L)
        rows = np.arange(B * L)
        onehot = torch.from_numpy(np.eye(K)[x0f])
        model = self.posterior(probs, xtf, tf, tf - 1)
        true = self.posterior(onehot, xtf, tf, tf - 1)
        kl = (true * (true.log() - model.log())).sum(dim=1)
        decoder = -model[rows, x0f].log()
        loss = torch.where(torch.from_numpy(tf == 0), decoder, kl)
        jump = -self.posterior(probs, xtf, tf, np.full_like(tf, -1))[rows, x0f].log()
        return loss.view(B, L).sum(dim=1), jump.view(B, L).sum(dim=1)

    def prior_kl(self, x0):
        q = self.P[self.T][x0.reshape(-1)]
        return (q * np.log(q * self.K)).sum(axis=1).reshape(x0.shape).sum(axis=1)


def float32_tolerance(ref, logits, x0, t):
    """
    Bound on the float32 error of compute_loss / jump_to_start_nll per example.

    With u = 2^-24, every float32 operation of the fast path has a relative error <= u. Per position the loss is a
    combination of about ten elementary operations (softplus, logaddexp, products with the tabulated posterior weights,
    themselves rounded to float32 with relative error u) on log-quantities of magnitude at most
    M = max_k |z_k| + |lse| + |log r| + |log(a / v)| + log(K + r + a / v) + |rho| + log2(K) + 1, all 1-Lipschitz in
    each other, so they contribute at most ~ 10 u M. The one K-wide sum H = sum_k h_k (h_k = log(1 + r p_k)) adds
    the pairwise-summation error ceil(log2 K) u sum_k h_k and K per-term errors of ~ u M each; it enters multiplied by
    the posterior's weight w <= 1 / K of a class other than x_0 and x_t, so both stay below u M log2(K) and u M. Hence
    |error| <= 16 u M per position, summed over the positions of the example.
    """
    K = ref.K
    alphas, one_minus = reference_alphas(ref.T)
    z = logits.double()
    lse = torch.logsumexp(z, dim=1)  # (B, L)
    bound = np.zeros(len(t))
    for b, tb in enumerate(t):
        ab = float(ref.P[tb + 1][0, 0] - ref.P[tb + 1][0, 1])  # alpha_bar_t
        rho = abs(math.log(ab * K / (1 - ab))) if ab > 0 else 0.0
        extra = rho
        if tb > 0:
            c = float(ref.P[tb][0, 0] - ref.P[tb][0, 1])
            r = c * K / (1 - c)
            av = alphas[tb] * K / one_minus[tb]
            extra += abs(math.log(r)) + (abs(math.log(av)) if av > 0 else 0.0) + math.log(K + r + av)
        M = z[b].abs().amax(dim=0) + lse[b].abs() + extra + math.log2(K) + 1
        bound[b] = 16 * F32_EPS * float(M.sum())
    return bound


def random_case(K, T, B_times, L, rng, scale=2.0):
    t = np.array(B_times)
    B = len(t)
    x0 = rng.integers(K, size=(B, L))
    xt = rng.integers(K, size=(B, L))
    xt[:, ::3] = x0[:, ::3]  # x_t == x_0 at every third position
    logits = torch.from_numpy(rng.normal(size=(B, K, L)) * scale)
    return logits, x0, xt, t


CASES = [(2, 10), (2, 4000), (3, 1), (3, 40), (27, 1000), (256, 100)]


def timesteps_for(T):
    return sorted({0, min(1, T - 1), min(2, T - 1), T // 3, T // 2, max(T - 2, 0), T - 1})


# ---------------------------------------------------------------- losses against the reference


@pytest.mark.parametrize("K,T", CASES)
def test_losses_match_reference_float64_and_float32(K, T):
    rng = np.random.default_rng(K * 7919 + T)
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    logits, x0, xt, t = random_case(K, T, timesteps_for(T), 6, rng)
    expected_loss, expected_jump = (v.numpy() for v in ref.losses(logits, x0, xt, t))
    args = (torch.from_numpy(x0), torch.from_numpy(xt), torch.from_numpy(t))
    loss = sched.compute_loss(logits, *args).numpy()
    jump = sched.jump_to_start_nll(logits, *args).numpy()
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jump, expected_jump, rtol=1e-10, atol=1e-10)

    # float32: the reference on the same (float32-representable) logits, within the derived bound
    logits32 = logits.float()
    expected_loss, expected_jump = (v.numpy() for v in ref.losses(logits32.double(), x0, xt, t))
    bound = float32_tolerance(ref, logits32, x0, t)
    loss32 = sched.compute_loss(logits32, *args)
    jump32 = sched.jump_to_start_nll(logits32, *args)
    assert loss32.dtype == torch.float32 and jump32.dtype == torch.float32
    assert np.all(np.abs(loss32.double().numpy() - expected_loss) <= bound), (loss32, expected_loss, bound)
    assert np.all(np.abs(jump32.double().numpy() - expected_jump) <= bound), (jump32, expected_jump, bound)


@pytest.mark.parametrize("K,T", [(2, 10), (27, 1000), (256, 100)])
def test_gradients_match_reference(K, T):
    rng = np.random.default_rng(K + T)
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    logits, x0, xt, t = random_case(K, T, timesteps_for(T), 4, rng)
    args = (torch.from_numpy(x0), torch.from_numpy(xt), torch.from_numpy(t))
    weights = torch.from_numpy(rng.uniform(0.5, 2.0, size=len(t)))  # a generic upstream gradient
    for i, name in enumerate(("compute_loss", "jump_to_start_nll")):
        z_ref = logits.clone().requires_grad_()
        (ref.losses(z_ref, x0, xt, t)[i] * weights).sum().backward()
        z = logits.clone().requires_grad_()
        (getattr(sched, name)(z, *args) * weights).sum().backward()
        np.testing.assert_allclose(z.grad.numpy(), z_ref.grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=name)


def test_gradcheck_tiny():
    K, T = 3, 6
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    rng = np.random.default_rng(0)
    logits, x0, xt, t = random_case(K, T, [0, 1, 3, T - 2, T - 1], 3, rng)
    args = (torch.from_numpy(x0), torch.from_numpy(xt), torch.from_numpy(t))
    z = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: sched.compute_loss(z, *args), (z,))
    assert torch.autograd.gradcheck(lambda z: sched.jump_to_start_nll(z, *args), (z,))
    # the terms combined, as in training (one backward through both)
    assert torch.autograd.gradcheck(lambda z: sched.compute_loss(z, *args) + 0.3 * sched.jump_to_start_nll(z, *args), (z,))


def test_exact_model_has_zero_loss_float32():
    """A denoiser certain of the true x_0 reproduces the true posterior: every term cancels, also at large K."""
    for K, T in ((5, 10), (4096, 1000)):
        sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
        g = torch.Generator().manual_seed(K)
        x0 = torch.randint(K, (6, 16), generator=g)
        xt = torch.where(torch.rand(6, 16, generator=g) < 0.5, x0, torch.randint(K, (6, 16), generator=g))
        t = torch.tensor([0, 1, 2, T // 2, T - 2, T - 1])
        exact = sched.index_to_log_onehot(x0)
        torch.testing.assert_close(sched.compute_loss(exact, x0, xt, t), torch.zeros(6), atol=2e-6, rtol=0)


@pytest.mark.parametrize("K,T", [(2, 10), (27, 1000), (256, 4000)])
def test_prior_kl_matches_reference(K, T):
    ref = Reference(K, min(T, 1000))
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=min(T, 1000))
    x0 = np.random.default_rng(0).integers(K, size=(3, 5))
    np.testing.assert_allclose(sched.prior_kl(torch.from_numpy(x0)).double().numpy(), ref.prior_kl(x0), atol=1e-10)
    assert sched.prior_kl(torch.from_numpy(x0)).dtype == torch.float32


def test_prior_kl_closed_form_when_alpha_bar_T_is_not_zero():
    """The closed form itself, at alpha_bar_T > 0 (the cosine schedule has alpha_bar_T = 0, where it vanishes)."""
    for K in (2, 7, 4096):
        for a in (0.0, 1e-9, 0.3, 0.999):
            q = a * np.eye(K)[1] + (1 - a) / K
            expected = float((q * np.log(q * K)).sum())
            got = scheduling._uniform_prior_kl(K, math.log(a) if a else -math.inf, math.log1p(-a))
            assert abs(got - expected) <= 1e-12 * max(1.0, abs(expected)), (K, a, got, expected)


# ---------------------------------------------------------------- the draws


def counts_match(counts, probs):
    """Each class count within 4.5 binomial standard deviations of n p, plus 3 for classes of tiny p (at t = 0 a
    class other than x_0 has p ~ 1e-6: a count of 1 is then no evidence of a wrong distribution)."""
    n = counts.sum()
    return bool(np.all(np.abs(counts - n * probs) <= 4.5 * np.sqrt(n * probs * (1 - probs)) + 3))


@pytest.mark.parametrize("K,T", [(3, 40), (27, 1000)])
def test_add_noise_distribution_matches_reference(K, T):
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    g = torch.Generator().manual_seed(K)
    n = 30000
    t = torch.tensor([0, 1, T // 2, T - 1])
    x0 = torch.full((4, n), 1)
    xt = sched.add_noise(x0, t, generator=g)
    assert xt.dtype == torch.long and xt.shape == x0.shape
    for row, tb in enumerate(t.tolist()):
        counts = np.bincount(xt[row].numpy(), minlength=K)
        assert counts_match(counts, ref.P[tb + 1][1]), (tb, counts, ref.P[tb + 1][1] * n)


def test_step_distribution_matches_reference():
    K, T = 5, 30
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    n = 40000
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(1, K, 1)) * 1.5).float().expand(n, K, 1).contiguous()
    probs = torch.softmax(logits[:1, :, 0].double(), dim=1)
    g = torch.Generator().manual_seed(3)
    for steps in (T, 7, 1):
        sched.set_timesteps(steps)
        for t in sorted({int(sched.timesteps[0]), int(sched.timesteps[-1]), int(sched.timesteps[len(sched.timesteps) // 2])}):
            prev = sched.previous_timestep(t)
            for xt_value in (0, 3):
                sample = torch.full((n, 1), xt_value)
                drawn = sched.step(logits, t, sample, generator=g).prev_sample[:, 0].numpy()
                expected = ref.posterior(probs, np.array([xt_value]), np.array([t]), np.array([prev]))[0].numpy()
                counts = np.bincount(drawn, minlength=K)
                assert counts_match(counts, expected), (steps, t, prev, counts, expected * n)


# ---------------------------------------------------------------- a large vocabulary: K = 4096


def general_path_losses(sched, logits, x0, xt, t):
    """compute_loss and jump_to_start_nll through the public, general q_posterior on log one-hot vectors (the path
    of earlier versions)."""
    log_x0, log_xt = sched.index_to_log_onehot(x0).to(logits.dtype), sched.index_to_log_onehot(xt).to(logits.dtype)
    log_model = sched.q_posterior(torch.log_softmax(logits, dim=1), log_xt, t)
    log_true = sched.q_posterior(log_x0, log_xt, t)
    kl = (log_true.exp() * (log_true - log_model)).sum(dim=1)
    decoder = -log_model.gather(1, x0.unsqueeze(1)).squeeze(1)
    loss = torch.where((t == 0).view(-1, 1), decoder, kl).sum(dim=1)
    jump_log = sched.q_posterior(torch.log_softmax(logits, dim=1), log_xt, t, prev_t=-1)
    jump = -jump_log.gather(1, x0.unsqueeze(1)).squeeze(1).sum(dim=1)
    return loss, jump


def large_case(K=4096, T=1000, L=8):
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 1, 2, 17, T // 2, T - 2, T - 1])
    x0 = torch.randint(K, (len(t), L), generator=g)
    xt = torch.where(torch.rand(len(t), L, generator=g) < 0.5, x0, torch.randint(K, (len(t), L), generator=g))
    logits = torch.randn(len(t), K, L, generator=g, dtype=torch.float64) * 2
    return MultinomialScheduler(num_classes=K, num_train_timesteps=T), logits, x0, xt, t


def test_large_k_matches_general_path():
    """At K = 4096 the fast path equals the general path in float64 (values and gradients), and in float32 it is
    within the float32 bound of `float32_tolerance` (M <= 40 here: |z| <= 10, |lse| <= 12, log2 K = 12, the log
    ratios <= 15) of that float64 result."""
    sched, logits, x0, xt, t = large_case()
    results = {}
    for dtype in (torch.float64, torch.float32):
        z = logits.detach().to(dtype).clone().requires_grad_()
        loss, jump = sched.compute_loss(z, x0, xt, t), sched.jump_to_start_nll(z, x0, xt, t)
        (loss.sum() + 0.5 * jump.sum()).backward()
        results[dtype] = (loss.detach().double(), jump.detach().double(), z.grad.double())
    z_ref = logits.detach().clone().requires_grad_()
    ref_loss, ref_jump = general_path_losses(sched, z_ref, x0, xt, t)
    (ref_loss.sum() + 0.5 * ref_jump.sum()).backward()
    loss, jump, grad = results[torch.float64]
    torch.testing.assert_close(loss, ref_loss.detach(), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(jump, ref_jump.detach(), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(grad, z_ref.grad, atol=1e-12, rtol=1e-10)
    assert float(logits.abs().max()) <= 10
    bound = 16 * F32_EPS * 40 * x0.shape[1]
    loss, jump, grad = results[torch.float32]
    torch.testing.assert_close(loss, ref_loss.detach(), atol=bound, rtol=0)
    torch.testing.assert_close(jump, ref_jump.detach(), atol=bound, rtol=0)
    torch.testing.assert_close(grad, z_ref.grad, atol=1e-6, rtol=0)


def test_large_k_step_matches_general_path_draws():
    """With the same generator the fast step and the general posterior see the same uniforms, so the Gumbel-max draws
    agree wherever the top two scores are not within rounding of each other (all but a negligible fraction)."""
    K, T = 4096, 1000
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    sched.set_timesteps(50)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, K, 64, generator=g) * 3
    sample = torch.randint(K, (2, 64), generator=g)
    agree = total = 0
    for t in (int(sched.timesteps[0]), int(sched.timesteps[25]), int(sched.timesteps[-1])):
        prev = sched.previous_timestep(t)
        fast = sched.step(logits, t, sample, generator=torch.Generator().manual_seed(t)).prev_sample
        log_prev = sched.q_posterior(torch.log_softmax(logits, 1), sched.index_to_log_onehot(sample), t, prev)
        general = sched.sample_categorical(log_prev, generator=torch.Generator().manual_seed(t))
        agree += int((fast == general).sum())
        total += fast.numel()
    assert agree >= total - 1, (agree, total)


@pytest.mark.parametrize("chunk", [4096 * 3, 4096 * 8 * 2, 1 << 22])
def test_large_k_chunking_is_exact_and_allocates_one_full_tensor(monkeypatch, chunk):
    """The K-wide reductions run in slices (over the batch, or over positions when one example is larger than a
    slice); the result must not depend on the slicing, and forward plus backward may allocate only one tensor of the
    size of the logits: the gradient."""
    from torch.utils._python_dispatch import TorchDispatchMode

    sched, logits, x0, xt, t = large_case()
    z = logits.float().requires_grad_()
    reference = sched.compute_loss(z, x0, xt, t)
    (reference_grad,) = torch.autograd.grad(reference.sum() + sched.jump_to_start_nll(z, x0, xt, t).sum(), z)

    class LargeOutputs(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.sizes = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if torch.is_tensor(o) and o.numel() >= z.numel() // 2:
                    inputs = [a for a in (*args, *(kwargs or {}).values()) if torch.is_tensor(a)]
                    if not any(o.data_ptr() == a.data_ptr() for a in inputs):  # not a view, in-place or out= write
                        self.sizes.append(str(func))
            return out

    monkeypatch.setattr(scheduling, "_CHUNK_ELEMENTS", chunk)
    z2 = logits.float().requires_grad_()
    with LargeOutputs() as mode:
        loss = sched.compute_loss(z2, x0, xt, t)
        jump = sched.jump_to_start_nll(z2, x0, xt, t)
        (grad,) = torch.autograd.grad(loss.sum() + jump.sum(), z2)
    torch.testing.assert_close(loss, reference, atol=2e-4, rtol=1e-6)
    torch.testing.assert_close(grad, reference_grad, atol=1e-6, rtol=1e-5)
    # The gradient of each term (empty_like) and autograd's sum of the two (add); nothing else when a slice is smaller
    # than the logits. When the whole tensor is one slice, the slice temporaries are full-size: z - max in each
    # forward and r p in the backward of compute_loss.
    expected = ["aten.empty_like.default", "aten.empty_like.default", "aten.add.Tensor"]
    if chunk >= z.numel():
        expected = ["aten.sub.Tensor", "aten.sub.Tensor", *expected[:2], "aten.mul.Tensor", expected[2]]
    assert mode.sizes == expected, mode.sizes


def test_large_k_forward_only_and_sampling_run():
    sched, logits, x0, xt, t = large_case(L=16)
    z = logits.float()
    with torch.no_grad():
        assert torch.isfinite(sched.compute_loss(z, x0, xt, t)).all()
        assert torch.isfinite(sched.jump_to_start_nll(z, x0, xt, t)).all()
    assert torch.equal(sched.prior_kl(x0), torch.zeros(len(t)))
    noisy = sched.add_noise(x0, t, generator=torch.Generator().manual_seed(0))
    assert noisy.shape == x0.shape and int(noisy.min()) >= 0 and int(noisy.max()) < sched.num_classes
    assert torch.equal(noisy[0], x0[0]) or (noisy[0] != x0[0]).float().mean() < 0.2  # t = 0 keeps almost everything
    sched.set_timesteps(10)
    out = sched.step(z[:1], sched.timesteps[0], xt[:1], generator=torch.Generator().manual_seed(0))
    assert out.prev_sample.shape == xt[:1].shape
    torch.testing.assert_close(out.pred_original_sample, torch.log_softmax(z[:1], dim=1))
