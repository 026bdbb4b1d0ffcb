"""The leave-one-out corrector and the temperature, against brute force: a joint distribution over every state of
K^L (small K and L) with dependent positions, its exact denoiser and its exact marginal at a timestep."""

import itertools
import math

import numpy as np
import pytest
import torch

from hf_multinomial import CharVocabulary, DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer

K, L, T = 3, 3, 10


class ExactProblem:
    """A random joint p(x_0) over K^L states; the exact denoiser p(x_0^l | x_t) and marginal p_t, by enumeration."""

    def __init__(self, scheduler, seed=0, concentration=0.3):
        rng = np.random.default_rng(seed)
        self.scheduler = scheduler
        self.states = torch.tensor(list(itertools.product(range(K), repeat=L)))
        self.p0 = rng.dirichlet(np.ones(len(self.states)) * concentration)
        self.powers = torch.tensor([K ** (L - 1 - l) for l in range(L)])

    def index(self, x):
        return (x * self.powers).sum(-1)

    def at(self, t):
        """(p_t over the states, the exact denoiser's logits (states, K, L)) at scheduler index t."""
        keep = math.exp(self.scheduler._tables64["log_cumprod_alpha"][t + 1])
        same = (self.states[:, None, :] == self.states[None, :, :]).double()
        q = (same * keep + (1 - keep) / K).prod(-1).numpy()  # q(x_t | x_0), rows x_0
        joint = self.p0[:, None] * q
        p_t = joint.sum(0)
        posterior = joint / p_t  # p(x_0 | x_t), columns x_t
        denoiser = np.stack([np.stack([posterior[(self.states[:, l] == k).numpy()].sum(0) for k in range(K)], 1)
                             for l in range(L)], 2)
        return p_t, torch.tensor(np.log(denoiser))

    def conditionals(self, p_t):
        """p_t(x^l = k | x^{-l}) (states, K, L), by brute force."""
        out = np.zeros((len(self.states), K, L))
        for s, l, k in itertools.product(range(len(self.states)), range(L), range(K)):
            y = self.states[s].clone()
            y[l] = k
            out[s, k, l] = p_t[int(self.index(y))]
        return out / out.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def problem():
    return ExactProblem(MultinomialScheduler(num_classes=K, num_train_timesteps=T))


@pytest.mark.parametrize("t", [0, 3, T - 2, T - 1])
def test_loo_conditional_is_the_exact_one_coordinate_conditional(problem, t):
    p_t, logits = problem.at(t)
    got = problem.scheduler.loo_log_conditional(logits, t, problem.states).exp().numpy()
    np.testing.assert_allclose(got, problem.conditionals(p_t), rtol=1e-10, atol=1e-12)


def one_move(problem, t, n, tau, positions=1, metropolis=True, seed=0):
    """The empirical distribution after one corrector move from n exact draws of p_t."""
    p_t, logits = problem.at(t)
    sched = problem.scheduler
    g = torch.Generator().manual_seed(seed)
    x = problem.states[torch.multinomial(torch.tensor(p_t), n, replacement=True, generator=g)]
    move = sched.step_correct(logits[problem.index(x)], t, x, generator=g, num_positions=positions, selection_tau=tau)
    accepted = sched.accept_correction(move, logits[problem.index(move.prev_sample)], t, generator=g,
                                       selection_tau=tau)
    if not metropolis:
        accepted = torch.ones_like(accepted)
    y = torch.where(accepted[:, None], move.prev_sample, x)
    freq = np.bincount(problem.index(y).numpy(), minlength=len(p_t)) / n
    sigma = np.sqrt(p_t * (1 - p_t) / n)
    return np.abs(freq - p_t) / sigma, accepted.double().mean().item()


@pytest.mark.parametrize("t,tau", [(3, 0.1), (3, 1.0), (6, 0.3)])
def test_one_position_move_leaves_the_marginal_invariant(problem, t, tau):
    """x ~ p_t exactly, one move, and the result is again distributed as p_t: within 5 standard errors at each of the
    27 states (a false alarm has probability below 3e-5), whatever the preference for uncertain positions. Without
    the Metropolis-Hastings test the same preference biases p_t by tens of standard errors, so the test can fail."""
    z, acceptance = one_move(problem, t, 400_000, tau)
    assert z.max() < 5, z.max()
    assert 0.3 < acceptance <= 1.0
    z_without, _ = one_move(problem, t, 400_000, tau, metropolis=False)
    assert z_without.max() > 10, z_without.max()


def test_several_positions_are_exact_for_independent_positions():
    """With positions independent in the data (a product distribution), their conditionals do not depend on one
    another, so redrawing several at once is exact too."""
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    problem = ExactProblem(sched, seed=1)
    rng = np.random.default_rng(1)
    pi = rng.dirichlet(np.ones(K), size=L)
    problem.p0 = np.prod([pi[l][problem.states[:, l].numpy()] for l in range(L)], axis=0)
    z, acceptance = one_move(problem, 4, 400_000, 0.5, positions=2)
    assert z.max() < 5 and acceptance == 1.0


def test_step_correct_shapes_masks_and_errors():
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=20)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, (4, 6), generator=g)
    logits = torch.randn(4, 5, 6, generator=g)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, 2] = True
    mask[3] = False  # an example with nothing to resample
    move = sched.step_correct(logits, 7, x, generator=g, num_positions=2, resample_mask=mask)
    changed = move.prev_sample != x
    assert not changed[~mask].any() and move.prev_sample.shape == x.shape
    assert move.has_candidates.tolist() == [True, True, True, False]
    accepted = sched.accept_correction(move, logits, 7, generator=g, resample_mask=mask)
    assert accepted.tolist() == [True, True, True, False]
    move = sched.step_correct(logits, 7, x, generator=g, resample_mask=mask)
    assert (move.positions[:3] == 2).all()
    assert not sched.accept_correction(move, logits, 7, generator=g, resample_mask=mask)[3]
    for kwargs, message in (({"num_positions": 0}, r"num_positions must be an integer in \[1, 6\]"),
                            ({"num_positions": 7}, "got 7"), ({"num_positions": 1.0}, "got 1.0"),
                            ({"selection_tau": 0.0}, "selection_tau must be a positive finite number, got 0.0"),
                            ({"selection_tau": float("nan")}, "got nan"),
                            ({"resample_mask": mask.long()}, "resample_mask must be a bool tensor")):
        with pytest.raises(ValueError, match=message):
            sched.step_correct(logits, 7, x, **kwargs)
    with pytest.raises(ValueError, match="timestep=20 is outside"):
        sched.step_correct(logits, 20, x)
    with pytest.raises(ValueError, match="non-finite"):
        sched.step_correct(torch.full_like(logits, float("nan")), 7, x)


def test_temperature_divides_the_logits():
    sched = MultinomialScheduler(num_classes=5, num_train_timesteps=20)
    sched.set_timesteps(20)
    x = torch.randint(5, (3, 4))
    logits = torch.randn(3, 5, 4)
    a = sched.step(logits, 10, x, generator=torch.Generator().manual_seed(0), temperature=0.5)
    b = sched.step(logits * 2, 10, x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.prev_sample, b.prev_sample)
    torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample)
    for bad in (0, -1.0, float("inf"), True, "1"):
        with pytest.raises(ValueError, match="temperature must be a positive finite number"):
            sched.step(logits, 10, x, temperature=bad)


@pytest.fixture(scope="module")
def tiny_pipeline():
    torch.manual_seed(0)
    denoiser = MultinomialTransformer(num_classes=27, max_seq_len=24, hidden_size=32, num_layers=1, num_heads=2,
                                      num_local_heads=1, local_window=4, num_train_timesteps=10)
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=27,
                                     num_train_timesteps=10), vocabulary=CharVocabulary.text8())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pipeline_corrector_calls_and_known_positions(tiny_pipeline):
    """Each move is one more denoiser call (the last move's output feeds the next ancestral step); known positions
    are never resampled; the plain sampler is unchanged."""
    calls = []
    handle = tiny_pipeline.denoiser.register_forward_hook(lambda *args: calls.append(1))
    try:
        plain = tiny_pipeline(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
        assert len(calls) == 5
        calls.clear()
        out = tiny_pipeline(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0),
                            corrector_steps=2, prefix="the cat", temperature=0.8)
        assert len(calls) == 5 + 4 * (1 + 2) - 4  # 4 steps with moves: one call at the new sample, one per move
    finally:
        handle.remove()
    assert all(text.startswith("the cat") and len(text) == 24 for text in out.samples)
    again = tiny_pipeline(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    assert again.samples == plain.samples
    for kwargs, message in (({"corrector_steps": -1}, "corrector_steps must be an integer >= 0, got -1"),
                            ({"corrector_positions": 0}, "corrector_positions must be a positive integer"),
                            ({"corrector_steps": 1, "corrector_positions": 25}, "exceeds the 24 positions"),
                            ({"temperature": 0}, "temperature must be a positive finite number, got 0"),
                            ({"corrector_selection_tau": -2.0}, "selection_tau must be a positive finite number")):
        with pytest.raises(ValueError, match=message):
            tiny_pipeline(num_inference_steps=2, **kwargs)
