"""The negative ELBO of the S-step sampler: the skip-step loss terms against explicit transition matrices, and the
whole bound against exact expectations over every x_t (brute force, float64)."""

import itertools
import math

import numpy as np
import pytest
import torch

from hf_multinomial import MultinomialScheduler
from hf_multinomial.evaluation import diffusion_negative_elbo, negative_elbo, negative_elbo_estimate, sampler_steps
from test_scheduler import Reference


def _softmax(logits, axis):
    probs = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return probs / probs.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("K,T", [(2, 10), (27, 50), (27, 1000)])
def test_skip_step_loss_matches_reference(K, T):
    """compute_loss(..., prev_timesteps) is KL(q(x_prev | x_t, x_0) || p(x_prev | x_t)) over the jump t -> prev, and
    -log p(x_0 | x_t) of the jump to the data where prev = -1, to 1e-10 in float64."""
    rng = np.random.default_rng(K * T)
    ref = Reference(K, T, explicit_products=False)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    t = np.array([1, 5, T // 2, T - 1, T - 1, T // 3, 0, T - 1])
    prev = np.array([-1, 0, T // 5, 0, T - 2, -1, -1, -1])
    B, L = len(t), 4
    x0 = rng.integers(K, size=(B, L))
    xt = rng.integers(K, size=(B, L))
    xt[:, :2] = x0[:, :2]
    logits = rng.normal(size=(B, K, L)) * 3
    probs = _softmax(logits, 1)
    expected = np.zeros(B)
    for b, l in itertools.product(range(B), range(L)):
        model = ref.q_posterior(probs[b, :, l][None], [xt[b, l]], t[b], prev[b])[0]
        if prev[b] == -1:
            expected[b] -= np.log(model[x0[b, l]])
        else:
            true = ref.q_posterior(np.eye(K)[[x0[b, l]]], [xt[b, l]], t[b], prev[b])[0]
            expected[b] += np.sum(true * (np.log(true) - np.log(model)))
    args = (torch.tensor(logits), torch.tensor(x0), torch.tensor(xt), torch.tensor(t))
    got = sched.compute_loss(*args, prev_timesteps=torch.tensor(prev)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    # prev = t - 1 is the training term; an int prev_timesteps applies to every example
    np.testing.assert_array_equal(sched.compute_loss(*args, prev_timesteps=torch.tensor(t - 1)).numpy(),
                                  sched.compute_loss(*args).numpy())
    np.testing.assert_array_equal(sched.compute_loss(*args[:3], torch.tensor(T - 1), prev_timesteps=-1).numpy(),
                                  sched.jump_to_start_nll(*args[:3], torch.tensor(T - 1)).numpy())


def test_compute_loss_terms_are_the_three_calls():
    K, T = 27, 100
    rng = np.random.default_rng(0)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    x0 = torch.tensor(rng.integers(K, size=(5, 7)))
    t = torch.tensor([0, 1, 50, 98, 99])
    xt = sched.add_noise(x0, t, generator=torch.Generator().manual_seed(0))
    logits = torch.randn(5, K, 7, generator=torch.Generator().manual_seed(1))
    terms = sched.compute_loss_terms(logits, x0, xt, t)
    torch.testing.assert_close(terms.loss, sched.compute_loss(logits, x0, xt, t), rtol=0, atol=0)
    torch.testing.assert_close(terms.jump_nll, sched.jump_to_start_nll(logits, x0, xt, t), rtol=0, atol=0)
    torch.testing.assert_close(terms.prior_kl, sched.prior_kl(x0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="class id 27"):
        sched.compute_loss_terms(logits, x0, torch.full_like(xt, 27), t)


def _states(K, L):
    return torch.tensor(list(itertools.product(range(K), repeat=L)))  # (K^L, L)


def exact_bound(model_fn, sched, x0, num_inference_steps):
    """E_q of the S-step negative ELBO, by enumerating every x_t in K^L for every step: sum_{x_t} q(x_t | x_0) term."""
    K = sched.config.num_classes
    steps, previous = sampler_steps(sched, num_inference_steps)
    states = _states(K, x0.shape[1])
    alpha_bar = np.exp(sched._tables64["log_cumprod_alpha"])
    total = sched.prior_kl(x0).double().clone()
    for t, prev in zip(steps.tolist(), previous.tolist()):
        keep = alpha_bar[t + 1]
        for b in range(x0.shape[0]):
            same = (states == x0[b]).double()
            weight = (keep * same + (1 - keep) / K).prod(dim=1)  # q(x_t | x_0) of every state
            x0_rep = x0[b].expand(len(states), -1)
            t_rep = torch.full((len(states),), t)
            losses = sched.compute_loss(model_fn(states, t_rep), x0_rep, states, t_rep,
                                        prev_timesteps=torch.full((len(states),), prev))
            total[b] += (weight * losses).sum()
    return total.numpy()


def product_model(K, L, rng):
    pi = rng.dirichlet(np.ones(K), size=L)  # (L, K): the data is a product of these categoricals
    logits = torch.log(torch.tensor(pi.T))

    def model_fn(x_t, t):
        return logits.unsqueeze(0).expand(x_t.shape[0], -1, -1).clone()

    return pi, model_fn


@pytest.mark.parametrize("T", [20, 100])
def test_exact_reversal_bound_is_the_log_likelihood_at_every_S(T):
    """For the model that predicts the data marginal, every S-step reverse process is the exact time reversal of the
    S-step chain, so its bound is -log p(x_0) exactly, at every S (not only S = T)."""
    K, L = 3, 2
    rng = np.random.default_rng(T)
    pi, model_fn = product_model(K, L, rng)
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    x0 = _states(K, L)[[0, 4, 7]]
    nll = -np.log(pi[np.arange(L)[None, :], x0.numpy()]).sum(axis=1)
    for S in sorted({T, T // 2, T // 5, T // 10, T // 20, 7, 3, 2, 1}):
        np.testing.assert_allclose(exact_bound(model_fn, sched, x0, S), nll, rtol=1e-9, atol=1e-9, err_msg=f"S={S}")


def test_the_sampled_bound_and_its_estimate_average_to_the_enumerated_one():
    """For a model that depends on x_t (random logits per state), the sampled S-step bound and its one-step estimate
    are unbiased for the enumerated expectation: 12 comparisons at 5 standard errors (a false alarm below 1e-5 with
    fixed seeds, so the test is deterministic)."""
    K, L, T = 3, 2, 30
    rng = np.random.default_rng(5)
    pi, _ = product_model(K, L, rng)
    table = torch.tensor(rng.normal(size=(K ** L, T, K, L)) * 1.5)
    powers = torch.tensor([K ** (L - 1 - l) for l in range(L)])

    def model_fn(x_t, t):
        return table[(x_t * powers).sum(dim=1), t]

    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    x0 = _states(K, L)[[1, 5]]
    for S in (T, 10, 3):
        exact = exact_bound(model_fn, sched, x0, S)
        g = torch.Generator().manual_seed(S)
        draws = torch.stack([negative_elbo(model_fn, sched, x0, g, 16, S) for _ in range(300)])
        err = draws.std(0).numpy() / math.sqrt(len(draws))
        assert np.all(np.abs(draws.mean(0).numpy() - exact) < 5 * err), (S, draws.mean(0), exact, err)
        reps = 3000
        est = negative_elbo_estimate(model_fn, sched, x0.repeat(reps, 1), g, S).view(reps, 2).double()
        est_err = est.std(0).numpy() / math.sqrt(reps)
        assert np.all(np.abs(est.mean(0).numpy() - exact) < 5 * est_err), (S, est.mean(0), exact, est_err)


def test_full_S_is_the_full_bound_with_the_same_draws():
    K, L, T = 27, 16, 40
    rng = np.random.default_rng(2)
    x0 = torch.tensor(rng.integers(K, size=(3, L)))
    weights = torch.tensor(rng.normal(size=(K, K)), dtype=torch.float32)

    def model_fn(x_t, t):  # depends on x_t and t
        return (weights[x_t] * (1 + t.view(-1, 1, 1) / T)).movedim(-1, 1)

    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    full = negative_elbo(model_fn, sched, x0, torch.Generator().manual_seed(0), 8)
    at_t = negative_elbo(model_fn, sched, x0, torch.Generator().manual_seed(0), 8, num_inference_steps=T)
    assert torch.equal(full, at_t)
    est = negative_elbo_estimate(model_fn, sched, x0, torch.Generator().manual_seed(3))
    est_t = negative_elbo_estimate(model_fn, sched, x0, torch.Generator().manual_seed(3), num_inference_steps=T)
    assert torch.equal(est, est_t)  # the same draws and the same tabulated rows
    # another S is another bound (not a relabelled full one)
    assert not torch.allclose(negative_elbo(model_fn, sched, x0, torch.Generator().manual_seed(0), 8, 5), full)


def test_sampler_steps_follow_set_timesteps():
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=100)
    for S in (1, 2, 5, 20, 100):
        steps, previous = sampler_steps(sched, S)
        sched.set_timesteps(S)
        assert steps[::-1].tolist() == sched.timesteps.tolist()
        assert previous[::-1].tolist() == [sched.previous_timestep(t) for t in sched.timesteps.tolist()]
        assert np.all(previous < steps) and previous[0] == -1


@pytest.mark.parametrize("bad", [0, -2, 101, 2.5, True])
def test_bad_step_counts_are_refused(bad):
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=100)
    x0 = torch.zeros(2, 3, dtype=torch.long)
    model_fn = lambda x, t: torch.zeros(x.shape[0], 5, 3)  # noqa: E731
    with pytest.raises(ValueError, match=f"num_inference_steps must be an integer in \\[1, 100\\], got {bad!r}"):
        negative_elbo(model_fn, sched, x0, num_inference_steps=bad)
    with pytest.raises(ValueError, match="num_inference_steps"):
        negative_elbo_estimate(model_fn, sched, x0, num_inference_steps=bad)


def test_bad_prev_timesteps_are_refused():
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=10)
    x0 = torch.zeros(2, 3, dtype=torch.long)
    logits = torch.zeros(2, 5, 3)
    t = torch.tensor([4, 6])
    for prev, message in ((torch.tensor([4, 1]), r"prev_timesteps must lie in \[-1, timesteps\)"),
                          (torch.tensor([-2, 1]), "prev_timesteps holds -2"),
                          (torch.tensor([1.5, 1.0]), "integer"), (7, r"prev_timesteps must lie")):
        with pytest.raises(ValueError, match=message):
            sched.compute_loss(logits, x0, x0, t, prev_timesteps=prev)


def test_a_training_step_validates_its_inputs_in_two_host_syncs(monkeypatch):
    """add_noise and the loss terms: one settled check each per micro-batch (the loss, the jump term and the prior
    from one call; before, compute_loss, jump_to_start_nll and prior_kl each checked the same ids again)."""
    from hf_multinomial.models import MultinomialTransformer
    from hf_multinomial.schedulers import scheduling_multinomial
    from hf_multinomial.training.diffusion import DiffusionObjective

    sched = MultinomialScheduler(num_classes=27, num_train_timesteps=20)
    model = MultinomialTransformer(num_classes=27, max_seq_len=16, hidden_size=16, num_layers=1, num_heads=2,
                                   num_local_heads=1, local_window=2, num_train_timesteps=20)

    class OneProcess:
        def gather(self, tensors):
            return tensors

    runs = []
    original = scheduling_multinomial._Checks.run
    monkeypatch.setattr(scheduling_multinomial._Checks, "run", lambda self: (runs.append(1), original(self))[1])
    objective = DiffusionObjective(sched, seed=0, aux_loss_weight=1.0)
    batch = {"input_ids": torch.randint(27, (4, 16), generator=torch.Generator().manual_seed(0))}
    loss, logs = objective(model, batch, OneProcess())
    assert len(runs) == 2 and torch.isfinite(loss) and "x0_nll" in logs
