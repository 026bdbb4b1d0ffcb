"""MultinomialScheduler against an independent float64 reference with explicit K x K transition matrices."""

import math

import numpy as np
import pytest
import torch

from hf_multinomial import ImportanceTimestepSampler, MultinomialScheduler
from hf_multinomial.evaluation import negative_elbo, negative_elbo_estimate


# ---------------------------------------------------------------- the reference, in probability space


def reference_alphas(T, s=0.008):
    """alpha_t for paper steps t = 1..T, from f(t) = cos(((t/T + s)/(1 + s)) pi/2), in plain Python floats."""
    f = [math.cos(((t / T + s) / (1 + s)) * math.pi / 2) for t in range(T + 1)]
    f[T] = 0.0
    return [f[t] / f[t - 1] for t in range(1, T + 1)]


def transition_matrix(alpha, K):
    """Q[i, j] = q(x_t = j | x_{t-1} = i)."""
    return alpha * np.eye(K) + (1 - alpha) / K * np.ones((K, K))


class Reference:
    """Explicit matrices: Qs[t] for paper step t (1..T), and products Q_{a+1} ... Q_b."""

    def __init__(self, K, T, explicit_products=True):
        self.K, self.T = K, T
        self.alphas = reference_alphas(T)
        self.Qs = [None] + [transition_matrix(a, K) for a in self.alphas]
        self.explicit = explicit_products
        self._products = {}

    def product(self, a, b):
        """Transition matrix from paper step a to paper step b (a <= b)."""
        if (a, b) not in self._products:
            self._products[(a, b)] = self._product(a, b)
        return self._products[(a, b)]

    def _product(self, a, b):
        if not self.explicit:
            alpha_bar = float(np.prod(self.alphas[a:b]))
            return transition_matrix(alpha_bar, self.K)
        out = np.eye(self.K)
        for t in range(a + 1, b + 1):
            out = out @ self.Qs[t]
        return out

    # scheduler index t <-> paper step t + 1
    def q_pred(self, x0, t):
        return x0 @ self.product(0, t + 1)

    def q_pred_one_timestep(self, xt_index, t):
        return self.Qs[t + 1][:, xt_index].T

    def q_posterior(self, x0, xt_index, t, prev_t):
        prior = x0 @ self.product(0, prev_t + 1)
        likelihood = self.product(prev_t + 1, t + 1)[:, xt_index].T
        unnormed = prior * likelihood
        return unnormed / unnormed.sum(axis=1, keepdims=True)


def random_x0(K, B, soft, rng):
    if soft:
        return rng.dirichlet(np.ones(K) * 0.5, size=B)
    return np.eye(K)[rng.integers(K, size=B)]


def to_log(p, dtype=torch.float64):
    return torch.log(torch.as_tensor(p, dtype=dtype).clamp(min=1e-30))


# ---------------------------------------------------------------- schedule


def test_cosine_schedule_matches_formula():
    for T in (1, 10, 1000, 4000):
        sched = MultinomialScheduler(num_classes=5, num_train_timesteps=T)
        alpha_bar = np.cumprod(reference_alphas(T))
        got = np.exp(sched._tables64["log_cumprod_alpha"][1:])
        np.testing.assert_allclose(got, alpha_bar, rtol=1e-12, atol=1e-300)
        assert got[-1] == 0.0
        one_minus = np.exp(sched._tables64["log_1_min_cumprod_alpha"][1:])
        np.testing.assert_allclose(one_minus, 1 - alpha_bar, rtol=1e-9)


# ---------------------------------------------------------------- primitives against the reference

CASES = [(2, 1), (2, 4000), (27, 1), (27, 7), (27, 1000), (256, 100), (256, 4000)]


@pytest.mark.parametrize("K,T", CASES)
@pytest.mark.parametrize("soft", [False, True])
def test_q_pred_and_posterior_match_reference(K, T, soft):
    rng = np.random.default_rng(K * 10007 + T)
    ref = Reference(K, T, explicit_products=(K < 256 or T <= 100) and T <= 1000)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    B = 6
    x0 = random_x0(K, B, soft, rng)
    log_x0 = to_log(x0)
    worst = 0.0
    timesteps = sorted({0, T - 1, T // 2, min(1, T - 1), max(T - 2, 0)})
    for t in timesteps:
        expected = ref.q_pred(x0, t)
        got = sched.q_pred(log_x0, t).exp().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)

        xt = rng.integers(K, size=B)
        log_xt = to_log(np.eye(K)[xt])
        np.testing.assert_allclose(
            sched.q_pred_one_timestep(log_xt, t).exp().numpy(), ref.q_pred_one_timestep(xt, t), rtol=1e-9, atol=1e-12
        )
        prev_choices = {t - 1, -1, (t - 1) // 3} if t > 0 else {-1}
        for prev_t in sorted(prev_choices):
            expected = ref.q_posterior(x0, xt, t, prev_t)
            if prev_t == t - 1:
                got = sched.q_posterior(log_x0, log_xt, t).exp().numpy()
                np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)
            got = sched.q_posterior(log_x0, log_xt, t, prev_t).exp().numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)
            # float32 path
            got32 = sched.q_posterior(log_x0.float(), log_xt.float(), t, prev_t).double().exp().numpy()
            worst = max(worst, np.abs(got32 - expected).max())
    assert worst < 1e-5, worst


@pytest.mark.parametrize("K,T", [(3, 20), (27, 1000)])
def test_batched_timesteps_match_scalar(K, T):
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(K, (5, 7), generator=g)
    xt = torch.randint(K, (5, 7), generator=g)
    t = torch.tensor([0, 1, T // 2, T - 2, T - 1])
    prev = torch.tensor([-1, -1, 3, 0, T - 5])
    lx0, lxt = sched.index_to_log_onehot(x0), sched.index_to_log_onehot(xt)
    batched = sched.q_posterior(lx0, lxt, t, prev)
    for i in range(5):
        single = sched.q_posterior(lx0[i : i + 1], lxt[i : i + 1], int(t[i]), int(prev[i]))
        torch.testing.assert_close(batched[i : i + 1], single)
    batched = sched.q_pred(lx0, t)
    for i in range(5):
        torch.testing.assert_close(batched[i : i + 1], sched.q_pred(lx0[i : i + 1], int(t[i])))


def test_index_to_log_onehot_is_a_certain_distribution():
    from hf_multinomial.schedulers.scheduling_multinomial import LOG_ZERO

    K = 7
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=10)
    for shape in [(4,), (3, 5), (2, 3, 4)]:
        x = torch.randint(K, shape, generator=torch.Generator().manual_seed(len(shape)))
        log_x = sched.index_to_log_onehot(x)
        assert log_x.shape == (shape[0], K, *shape[1:]) and log_x.dtype == torch.float32
        onehot = torch.nn.functional.one_hot(x, K).movedim(-1, 1).bool()
        assert torch.equal(log_x, torch.where(onehot, 0.0, LOG_ZERO))
        assert torch.equal(log_x.argmax(dim=1), x)
        torch.testing.assert_close(log_x.logsumexp(dim=1), torch.zeros(shape), atol=1e-12, rtol=0)
    # as the denoiser's output it is the true x_0: the reverse step is then the forward process' own posterior
    x0, xt = torch.randint(K, (4, 5)), torch.randint(K, (4, 5))
    loss = sched.compute_loss(sched.index_to_log_onehot(x0), x0, xt, torch.tensor([0, 1, 5, 9]))
    torch.testing.assert_close(loss, torch.zeros(4), atol=1e-6, rtol=0)
    for bad, match in ((torch.tensor([0, K]), f"class id {K}"), (torch.tensor([-1, 0]), "class id -1"), (x0.float(), "dtype")):
        with pytest.raises(ValueError, match=match):
            sched.index_to_log_onehot(bad)


def test_float32_large_K_T_finite_and_normalised():
    K, T = 256, 4000
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    g = torch.Generator().manual_seed(1)
    t = torch.arange(T)
    x0 = torch.randint(K, (T, 3), generator=g)
    soft = torch.log_softmax(torch.randn(T, K, 3, generator=g) * 3, dim=1)
    xt = sched.add_noise(x0, t, generator=g)
    log_xt = sched.index_to_log_onehot(xt)
    outputs = [sched.q_pred(sched.index_to_log_onehot(x0), t), sched.q_pred(soft, t), sched.q_pred_one_timestep(log_xt, t)]
    for log_start in (sched.index_to_log_onehot(x0), soft):
        outputs.append(sched.q_posterior(log_start[1:], log_xt[1:], t[1:]))
        outputs.append(sched.q_posterior(log_start[1:], log_xt[1:], t[1:], torch.div(t[1:], 2, rounding_mode="floor") - 1))
    for out in outputs:
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.logsumexp(dim=1), torch.zeros_like(out[:, 0]), atol=2e-5, rtol=0)


# ---------------------------------------------------------------- losses against the reference


@pytest.mark.parametrize("K,T", [(2, 10), (27, 50), (256, 100)])
def test_compute_loss_matches_reference_kl(K, T):
    rng = np.random.default_rng(3)
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    B, L = 6, 4
    x0 = rng.integers(K, size=(B, L))
    xt = rng.integers(K, size=(B, L))
    t = np.array([0, 1, 2, T // 2, T - 2, T - 1])
    logits = rng.normal(size=(B, K, L)) * 2
    got = sched.compute_loss(torch.tensor(logits), torch.tensor(x0), torch.tensor(xt), torch.tensor(t)).numpy()

    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = np.zeros(B)
    for b in range(B):
        for l in range(L):
            prev = t[b] - 1
            model = ref.q_posterior(probs[b, :, l][None], [xt[b, l]], t[b], prev)[0]
            if t[b] == 0:
                expected[b] += -np.log(model[x0[b, l]])
            else:
                true = ref.q_posterior(np.eye(K)[[x0[b, l]]], [xt[b, l]], t[b], prev)[0]
                nz = true > 0
                expected[b] += np.sum(true[nz] * (np.log(true[nz]) - np.log(model[nz])))
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)

    got32 = sched.compute_loss(torch.tensor(logits).float(), torch.tensor(x0), torch.tensor(xt), torch.tensor(t))
    np.testing.assert_allclose(got32.double().numpy(), expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("K,T", [(2, 10), (27, 50), (27, 1000), (256, 100)])
def test_class_id_losses_match_reference_to_1e_10(K, T):
    """compute_loss and jump_to_start_nll run on reductions over K only (no (B, K, L) posteriors); in float64 they keep
    the brute-force values to 1e-10, with x_t == x_0 at some positions and t = 0, 1, T - 1 among the timesteps."""
    rng = np.random.default_rng(K + T)
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    B, L = 6, 5
    x0 = rng.integers(K, size=(B, L))
    xt = rng.integers(K, size=(B, L))
    xt[:, :2] = x0[:, :2]
    t = np.array([0, 1, 2, T // 2, T - 2, T - 1])
    logits = rng.normal(size=(B, K, L)) * 3
    args = (torch.tensor(logits), torch.tensor(x0), torch.tensor(xt), torch.tensor(t))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    loss, jump = np.zeros(B), np.zeros(B)
    for b in range(B):
        for l in range(L):
            model = ref.q_posterior(probs[b, :, l][None], [xt[b, l]], t[b], t[b] - 1)[0]
            if t[b] == 0:
                loss[b] -= np.log(model[x0[b, l]])
            else:
                true = ref.q_posterior(np.eye(K)[[x0[b, l]]], [xt[b, l]], t[b], t[b] - 1)[0]
                loss[b] += np.sum(true * (np.log(true) - np.log(model)))
            posterior = probs[b, :, l] * ref.product(0, t[b] + 1)[:, xt[b, l]]
            jump[b] -= np.log(posterior[x0[b, l]] / posterior.sum())
    np.testing.assert_allclose(sched.compute_loss(*args).numpy(), loss, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sched.jump_to_start_nll(*args).numpy(), jump, rtol=1e-10, atol=1e-10)


def test_add_noise_batched_timesteps_distribution():
    """add_noise keeps x_0 with probability alpha_bar_t, else draws a uniform class: per-row timesteps, frequencies
    against the reference. (Since the O(B L) draw replaced the (B, K, L) Gumbel draw, a seeded add_noise returns other
    samples than before, from the same distribution.)"""
    K, T, n = 6, 50, 30000
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    ref = Reference(K, T)
    t = torch.tensor([0, 3, 25, 49])
    x0 = torch.tensor([[0], [5], [2], [1]]).expand(4, n)
    xt = sched.add_noise(x0, t, generator=torch.Generator().manual_seed(2))
    for row in range(4):
        counts = np.bincount(xt[row].numpy(), minlength=K)
        expected = n * ref.q_pred(np.eye(K)[[int(x0[row, 0])]], int(t[row]))[0]
        assert np.all(np.abs(counts - expected) <= 4.5 * np.sqrt(expected) + 3), (row, counts, expected)


def test_prior_kl_matches_reference():
    K, T = 5, 30
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    x0 = torch.randint(K, (3, 4))
    qT = ref.q_pred(np.eye(K)[x0.flatten().numpy()], T - 1)
    expected = (qT * np.log(qT * K)).sum(axis=1).reshape(3, 4).sum(axis=1)
    np.testing.assert_allclose(sched.prior_kl(x0).numpy(), expected, atol=1e-6)


def test_add_noise_distribution():
    K, T = 4, 20
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    ref = Reference(K, T)
    n = 40000
    g = torch.Generator().manual_seed(0)
    for t in (0, 7, T - 1):
        xt = sched.add_noise(torch.full((n,), 2), torch.full((n,), t), generator=g)
        freq = np.bincount(xt.numpy(), minlength=K) / n
        expected = ref.q_pred(np.eye(K)[[2]], t)[0]
        assert np.abs(freq - expected).max() < 4 * math.sqrt(0.25 / n)


# ---------------------------------------------------------------- exactness with the true-marginal model


def product_of_categoricals(K, L, rng):
    return rng.dirichlet(np.ones(K), size=L)  # (L, K)


def marginal_model(pi):
    """A denoiser predicting x_0 as the data marginal: then p(x_{t-1} | x_t) is the exact time reversal."""
    logits = torch.log(torch.tensor(pi.T, dtype=torch.float64))  # (K, L)

    def model_fn(x_t, t):
        return logits.unsqueeze(0).expand(x_t.shape[0], -1, -1).clone()

    return model_fn


@pytest.mark.parametrize("T", [50, 1000])
def test_negative_elbo_equals_log_likelihood(T):
    K, L = 5, 6
    rng = np.random.default_rng(T)
    pi = product_of_categoricals(K, L, rng)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    B = 8
    x0 = torch.tensor(np.stack([rng.choice(K, size=B, p=pi[l]) for l in range(L)], axis=1))
    nll = -np.log(pi[np.arange(L)[None, :], x0.numpy()]).sum(axis=1)
    g = torch.Generator().manual_seed(0)
    reps = 64 if T == 50 else 4
    elbos = torch.stack([negative_elbo(marginal_model(pi), sched, x0, generator=g, timesteps_per_batch=50) for _ in range(reps)])
    mean = elbos.mean(0).numpy()
    stderr = elbos.std(0).numpy() / math.sqrt(reps)
    assert np.all(np.abs(mean - nll) < 5 * stderr + 1e-3), (mean, nll, stderr)
    pooled_err = elbos.std().item() / math.sqrt(elbos.numel())
    assert abs(mean.mean() - nll.mean()) < 4 * pooled_err + 1e-3, (mean.mean(), nll.mean(), pooled_err)
    # the one-t estimate is unbiased for the same quantity
    x_rep = x0.repeat(400, 1)
    est = negative_elbo_estimate(marginal_model(pi), sched, x_rep, generator=g).view(400, B)
    est_mean, est_err = est.mean(0).numpy(), est.std(0).numpy() / math.sqrt(400)
    assert np.all(np.abs(est_mean - nll) < 5 * est_err + 0.05)


@pytest.mark.parametrize("T,steps", [(200, 200), (200, 5)])
def test_sampling_reproduces_data_distribution(T, steps):
    K, L = 4, 3
    rng = np.random.default_rng(7)
    pi = product_of_categoricals(K, L, rng)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    sched.set_timesteps(steps)
    n = 20000
    g = torch.Generator().manual_seed(1)
    model_fn = marginal_model(pi)
    x = sched.sample_prior((n, L), generator=g)
    for t in sched.timesteps:
        x = sched.step(model_fn(x, t).float(), t, x, generator=g).prev_sample
    for l in range(L):
        freq = np.bincount(x[:, l].numpy(), minlength=K) / n
        assert np.abs(freq - pi[l]).max() < 4.5 * math.sqrt(0.25 / n), (freq, pi[l])
    # positions stay independent: the joint of positions 0 and 1 is the product of marginals
    joint = np.zeros((K, K))
    np.add.at(joint, (x[:, 0].numpy(), x[:, 1].numpy()), 1.0 / n)
    assert np.abs(joint - np.outer(pi[0], pi[1])).max() < 4.5 * math.sqrt(0.25 / n)


# ---------------------------------------------------------------- diffusers contract


def test_set_timesteps():
    sched = MultinomialScheduler(num_classes=3, num_train_timesteps=1000)
    for n in (1, 2, 7, 40, 999, 1000):
        sched.set_timesteps(n)
        ts = sched.timesteps.tolist()
        assert len(ts) == n and len(set(ts)) == n
        assert ts[0] == 999 and (n == 1 or ts[-1] == 0)
        assert all(a > b for a, b in zip(ts, ts[1:]))
    assert len(sched) == 1000
    for bad in (0, 1001, -3, 2.5):
        with pytest.raises(ValueError, match=str(bad)):
            sched.set_timesteps(bad)


def test_step_outputs_and_tuple():
    sched = MultinomialScheduler(num_classes=6, num_train_timesteps=30)
    sched.set_timesteps(10)
    sample = torch.randint(6, (2, 5))
    logits = torch.randn(2, 6, 5)
    out = sched.step(logits, sched.timesteps[0], sample, generator=torch.Generator().manual_seed(0))
    assert out.prev_sample.shape == (2, 5) and out.prev_sample.dtype == torch.long
    torch.testing.assert_close(out.pred_original_sample, torch.log_softmax(logits, 1))
    prev, pred = sched.step(logits, sched.timesteps[0], sample, generator=torch.Generator().manual_seed(0), return_dict=False)
    assert torch.equal(prev, out.prev_sample)
    # the last step returns the clean sample: a confident model's prediction comes back exactly
    confident = torch.nn.functional.one_hot(torch.tensor([[1, 2, 3, 4, 5]] * 2), 6).movedim(-1, 1).float() * 50
    out = sched.step(confident, 0, sample)
    assert torch.equal(out.prev_sample, torch.tensor([[1, 2, 3, 4, 5]] * 2))


def test_save_load_round_trip(tmp_path):
    sched = MultinomialScheduler(num_classes=27, num_train_timesteps=123)
    sched.save_pretrained(tmp_path)
    assert (tmp_path / "scheduler_config.json").exists()
    loaded = MultinomialScheduler.from_pretrained(tmp_path)
    assert loaded.config.num_classes == 27 and loaded.config.num_train_timesteps == 123
    for name, table in sched._tables64.items():
        np.testing.assert_array_equal(loaded._tables64[name], table)


def test_reproducible_with_generator():
    sched = MultinomialScheduler(num_classes=27, num_train_timesteps=100)
    x0 = torch.randint(27, (4, 32))
    t = torch.tensor([0, 10, 50, 99])
    a = sched.add_noise(x0, t, generator=torch.Generator().manual_seed(5))
    b = sched.add_noise(x0, t, generator=torch.Generator().manual_seed(5))
    c = sched.add_noise(x0, t, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    sched.set_timesteps(10)
    logits = torch.randn(4, 27, 32)
    s1 = sched.step(logits, 99, a, generator=torch.Generator().manual_seed(1)).prev_sample
    s2 = sched.step(logits, 99, a, generator=torch.Generator().manual_seed(1)).prev_sample
    assert torch.equal(s1, s2)


def test_bad_inputs_raise_with_value():
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=10)
    good = torch.randint(5, (2, 3))
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="class id 5"):
        sched.add_noise(torch.tensor([[0, 5, 1]]), torch.tensor([1]))
    with pytest.raises(ValueError, match="class id -1"):
        sched.index_to_log_onehot(torch.tensor([[0, -1, 1]]))
    with pytest.raises(ValueError, match="dtype"):
        sched.add_noise(good.float(), t)
    with pytest.raises(ValueError, match="10"):
        sched.add_noise(good, torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="-1"):
        sched.add_noise(good, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="7 classes|shape \\(2, 7, 3\\)"):
        sched.compute_loss(torch.randn(2, 7, 3), good, good, t)
    with pytest.raises(ValueError, match="shape"):
        sched.compute_loss(torch.randn(2, 5, 4), good, good, t)
    with pytest.raises(ValueError, match="prev_t"):
        sched.q_posterior(sched.index_to_log_onehot(good), sched.index_to_log_onehot(good), 3, 3)
    sched.set_timesteps(4)
    with pytest.raises(ValueError, match="timestep 4 is not"):
        sched.step(torch.randn(2, 5, 3), 4, good)
    with pytest.raises(ValueError, match="class id 9"):
        sched.step(torch.randn(2, 5, 3), 9, torch.tensor([[9, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="num_classes"):
        MultinomialScheduler(num_classes=1)


# ---------------------------------------------------------------- importance sampling of t


def test_importance_sampler_uniform_then_weighted():
    T = 6
    sampler = ImportanceTimestepSampler(T, min_count=2, decay=0.5)
    torch.testing.assert_close(sampler.probabilities(), torch.full((T,), 1 / T, dtype=torch.float64))
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    for _ in range(3):
        sampler.update(torch.arange(T), losses)
    assert sampler.is_warm
    expected = (losses.double() + 1e-4) / (losses.double() + 1e-4).sum()  # sqrt(E[L^2]) = L for constant losses
    torch.testing.assert_close(sampler.probabilities(), expected)
    # the running average: decay * old + (1 - decay) * new
    sampler.update(torch.tensor([0]), torch.tensor([3.0]))
    assert math.isclose(float(sampler.loss_sq_history[0]), 0.5 * 1 + 0.5 * 9)
    # draws follow q(t) and report it
    g = torch.Generator().manual_seed(0)
    t, pt = sampler.sample(60000, generator=g)
    freq = torch.bincount(t, minlength=T).double() / 60000
    assert (freq - sampler.probabilities()).abs().max() < 0.01
    torch.testing.assert_close(pt.double(), sampler.probabilities()[t], rtol=1e-6, atol=0)


def test_importance_sampler_state_round_trip():
    a = ImportanceTimestepSampler(10)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        t, _ = a.sample(8, generator=g)
        a.update(t, torch.rand(8, generator=g))
    b = ImportanceTimestepSampler(10)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.probabilities(), b.probabilities())
    assert torch.equal(a.sample(5, torch.Generator().manual_seed(3))[0], b.sample(5, torch.Generator().manual_seed(3))[0])
    with pytest.raises(ValueError, match="10"):
        ImportanceTimestepSampler(11).load_state_dict(a.state_dict())


def test_jump_to_start_nll_matches_reference_posterior():
    K, T, B, L = 6, 40, 5, 3
    rng = np.random.default_rng(11)
    ref = Reference(K, T)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    x0 = rng.integers(K, size=(B, L))
    xt = rng.integers(K, size=(B, L))
    t = np.array([0, 1, 9, 25, T - 1])
    logits = rng.normal(size=(B, K, L))
    got = sched.jump_to_start_nll(torch.tensor(logits), torch.tensor(x0), torch.tensor(xt), torch.tensor(t)).numpy()
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.zeros(B)
    for b in range(B):
        likelihood = ref.product(0, t[b] + 1)  # q(x_t = j | x_0 = i)
        for l in range(L):
            posterior = probs[b, :, l] * likelihood[:, xt[b, l]]
            expected[b] -= np.log(posterior[x0[b, l]] / posterior.sum())
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # at t = 0 it is the decoder term of compute_loss
    zeros = torch.zeros(B, dtype=torch.long)
    torch.testing.assert_close(
        sched.jump_to_start_nll(torch.tensor(logits), torch.tensor(x0), torch.tensor(xt), zeros),
        sched.compute_loss(torch.tensor(logits), torch.tensor(x0), torch.tensor(xt), zeros),
    )


def test_jump_to_start_nll_rejects_bad_inputs_like_compute_loss():
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=10)
    good = torch.randint(5, (2, 3))
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="shape"):
        sched.jump_to_start_nll(torch.randn(2, 5, 4), good, good, t)
    with pytest.raises(ValueError, match="x_t shape"):
        sched.jump_to_start_nll(torch.randn(2, 5, 3), good, good[:, :2], t)
    with pytest.raises(ValueError, match="class id 7"):
        sched.jump_to_start_nll(torch.randn(2, 5, 3), torch.tensor([[0, 7, 1], [0, 0, 0]]), good, t)
