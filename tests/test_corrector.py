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
        """(p_t over the states, the exact denoiser's logits (states, K, L)) at scheduler index t. The exact denoiser
        of this scheduler's parametrisation predicts x_0^l from the other positions, p(x_0^l | x_t^{-l}): its reverse
        step q(x_t | x_prev)(c x0_hat + u) counts the evidence of x_t^l itself (`test_exact_denoiser_minimises_the_
        loss` checks that it is the loss's minimiser)."""
        q_pos = self.position_likelihoods(t)  # (L, x_0 states, x_t states)
        p_t = self.p0 @ q_pos.prod(axis=0)
        denoiser = np.zeros((len(self.states), K, L))
        for l in range(L):
            others = np.prod([q_pos[j] for j in range(L) if j != l], axis=0)  # q(x_t^{-l} | x_0^{-l})
            weights = self.p0[:, None] * others  # p(x_0, x_t^{-l})
            for k in range(K):
                denoiser[:, k, l] = weights[(self.states[:, l] == k).numpy()].sum(0)
            denoiser[:, :, l] /= denoiser[:, :, l].sum(axis=1, keepdims=True)
        return p_t, torch.tensor(np.log(denoiser))

    def position_likelihoods(self, t):
        """q(x_t^l | x_0^l) for every position, as (L, x_0 states, x_t states) matrices."""
        keep = math.exp(self.scheduler._tables64["log_cumprod_alpha"][t + 1])
        same = (self.states[:, None, :] == self.states[None, :, :]).double().numpy()  # (x_0, x_t, L)
        return np.moveaxis(same * keep + (1 - keep) / K, -1, 0)

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


@pytest.mark.parametrize("t", [1, 4, T - 2])
def test_exact_denoiser_minimises_the_loss(problem, t):
    """E over p(x_0) q(x_t | x_0) of compute_loss and of jump_to_start_nll, enumerated: the leave-one-out prediction
    p(x_0^l | x_t^{-l}) scores below the full posterior p(x_0^l | x_t) and below random perturbations of itself."""
    _, loo = problem.at(t)
    states, sched = problem.states, problem.scheduler
    n = len(states)
    weight = torch.tensor(problem.p0[:, None] * problem.position_likelihoods(t).prod(axis=0)).flatten()  # (x_0, x_t)
    x0, xt = states.repeat_interleave(n, dim=0), states.repeat(n, 1)
    ts = torch.full((n * n,), t)

    def expected(logits_per_state):
        logits = logits_per_state[problem.index(xt)]
        return [float((weight * f(logits, x0, xt, ts)).sum()) for f in (sched.compute_loss, sched.jump_to_start_nll)]

    best = expected(loo)
    keep = math.exp(sched._tables64["log_cumprod_alpha"][t + 1])
    likelihood = torch.log(torch.where(torch.nn.functional.one_hot(states, K).movedim(-1, 1).bool(),
                                       keep + (1 - keep) / K, (1 - keep) / K)).double()
    posterior = torch.log_softmax(loo + likelihood, dim=1)  # p(x_0^l | x_t): the evidence of x_t^l counted again
    assert all(b < p - 1e-3 for b, p in zip(best, expected(posterior))), (best, expected(posterior))
    rng = np.random.default_rng(t)
    for _ in range(5):
        perturbed = loo + torch.tensor(rng.normal(size=loo.shape) * 0.1)
        assert all(b < p for b, p in zip(best, expected(perturbed)))


def one_move(problem, t, n, tau, positions=1, metropolis=True, seed=0):
    """The empirical distribution after one corrector move from n exact draws of p_t."""
    p_t, logits = problem.at(t)
    sched = problem.scheduler
    g = torch.Generator().manual_seed(seed)
    x = problem.states[torch.multinomial(torch.tensor(p_t), n, replacement=True, generator=g)]
    move = sched.step_correct(logits[problem.index(x)], t, x, generator=g, num_positions=positions, selection_tau=tau)
    accepted = sched.accept_correction(move, logits[problem.index(move.proposal)], t, generator=g,
                                       selection_tau=tau)
    if not metropolis:
        accepted = torch.ones_like(accepted)
    y = torch.where(accepted[:, None], move.proposal, x)
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
    changed = move.proposal != x
    assert not changed[~mask].any() and move.proposal.shape == x.shape
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
    are never resampled; without the corrector the sampler is the plain ancestral one (seeded, reproducible)."""
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
    # the moves may redraw only unknown positions: the prefix's 7 characters are never candidates
    masks = []
    step_correct = tiny_pipeline.scheduler.step_correct
    tiny_pipeline.scheduler.step_correct = lambda *a, **kw: (masks.append(kw["resample_mask"]), step_correct(*a, **kw))[1]
    try:
        tiny_pipeline(batch_size=2, num_inference_steps=3, corrector_steps=1, prefix="the cat",
                      generator=torch.Generator().manual_seed(0))
    finally:
        del tiny_pipeline.scheduler.step_correct
    assert len(masks) == 2 and all(not m[:, :7].any() and m[:, 7:].all() for m in masks)
    again = tiny_pipeline(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    assert again.samples == plain.samples
    for kwargs, message in (({"corrector_steps": -1}, "corrector_steps must be an integer >= 0, got -1"),
                            ({"corrector_positions": 0}, "corrector_positions must be a positive integer"),
                            ({"corrector_steps": 1, "corrector_positions": 25}, "exceeds the 24 positions"),
                            ({"temperature": 0}, "temperature must be a positive finite number, got 0"),
                            ({"corrector_selection_tau": -2.0}, "selection_tau must be a positive finite number")):
        with pytest.raises(ValueError, match=message):
            tiny_pipeline(num_inference_steps=2, **kwargs)


def test_corrector_on_maps_keeps_shape_and_range():
    from hf_multinomial.models.unet_segmentation import SegmentationUNet

    torch.manual_seed(0)
    denoiser = SegmentationUNet(num_classes=4, sample_size=(8, 16), num_train_timesteps=6, base_channels=8,
                                channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=()).eval()
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=4,
                                     num_train_timesteps=6))
    pipe.set_progress_bar_config(disable=True)
    maps = pipe(batch_size=3, num_inference_steps=3, output_type="pt", corrector_steps=2, corrector_positions=5,
                generator=torch.Generator().manual_seed(0)).samples
    assert maps.shape == (3, 8, 16) and maps.dtype == torch.long and 0 <= int(maps.min()) and int(maps.max()) < 4
    again = pipe(batch_size=3, num_inference_steps=3, output_type="pt", corrector_steps=2, corrector_positions=5,
                 generator=torch.Generator().manual_seed(0)).samples
    assert torch.equal(maps, again)
