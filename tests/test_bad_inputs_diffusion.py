"""Bad input to the diffusion side (scheduler, pipeline, denoisers, their loading, evaluation) gets a clear error
that names the problem and the value or the file, never a silent reinterpretation."""

import json
import math
import re

import pytest
import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.utils import BaseOutput

from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer, SegmentationUNet
from hf_multinomial.data import CharVocabulary
from hf_multinomial.schedulers import ImportanceTimestepSampler
from hf_multinomial.evaluation import (
    bits_per_unit,
    diffusion_negative_elbo,
    flow_negative_log_likelihood,
    negative_elbo,
    negative_elbo_estimate,
)

K, T, L = 5, 10, 6
WEIGHTS = "diffusion_pytorch_model.safetensors"


def tiny_transformer(**overrides):
    config = dict(num_classes=K, max_seq_len=8, hidden_size=8, num_layers=1, num_heads=2, num_local_heads=1,
                  local_window=2, mlp_ratio=1.0, num_train_timesteps=T)
    config.update(overrides)
    torch.manual_seed(0)
    return MultinomialTransformer(**config).eval()


def tiny_unet(**overrides):
    config = dict(num_classes=K, sample_size=(4, 8), base_channels=4, channel_multipliers=(1, 2), num_res_blocks=1,
                  attention_resolutions=(), dropout=0.0, num_groups=2, num_train_timesteps=T)
    config.update(overrides)
    torch.manual_seed(0)
    return SegmentationUNet(**config).eval()


def text_pipe():
    pipe = DiscreteDiffusionPipeline(denoiser=tiny_transformer(), scheduler=MultinomialScheduler(num_classes=K, num_train_timesteps=T))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def map_pipe():
    pipe = DiscreteDiffusionPipeline(denoiser=tiny_unet(), scheduler=MultinomialScheduler(num_classes=K, num_train_timesteps=T))
    pipe.set_progress_bar_config(disable=True)
    return pipe


SCHED = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
X = torch.tensor([[0, 1, 2, 3, 4, 0], [4, 3, 2, 1, 0, 1]])
LOG_X = SCHED.index_to_log_onehot(X)
LOGITS = torch.randn(2, K, L, generator=torch.Generator().manual_seed(0))
TWO_T = torch.tensor([2, 7])


def with_value(tensor, index, value):
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


def step_at(timestep, logits=LOGITS, sample=X, steps=T):
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    sched.set_timesteps(steps)
    return sched.step(logits, timestep, sample)


# ---------------------------------------------------------------- 1. numbers: zero, negative, fractional, out of range

SCHEDULER_NUMBERS = {
    "q_pred negative t": (lambda: SCHED.q_pred(LOG_X, -5), r"t=-5 is outside \[-1, 10\)"),
    "q_pred t = T": (lambda: SCHED.q_pred(LOG_X, 10), r"t=10 is outside \[-1, 10\) \(num_train_timesteps=10\)"),
    "q_pred negative tensor t": (lambda: SCHED.q_pred(LOG_X, torch.tensor([-3, 2])), r"t holds -3"),
    "q_pred fractional t": (lambda: SCHED.q_pred(LOG_X, 3.7), r"3\.7"),
    "q_pred float tensor t": (lambda: SCHED.q_pred(LOG_X, torch.tensor([3.7, 1.0])), r"3\.7"),
    "q_pred bool t": (lambda: SCHED.q_pred(LOG_X, True), r"True"),
    "q_posterior list t": (lambda: SCHED.q_posterior(LOG_X, LOG_X, t=[-3, 2]), r"t holds -3, outside \[0, 10\)"),
    "q_posterior t = T": (lambda: SCHED.q_posterior(LOG_X, LOG_X, 10), r"t=10 is outside \[0, 10\)"),
    "q_posterior prev_t = t": (lambda: SCHED.q_posterior(LOG_X, LOG_X, 3, 3), r"prev_t=3 for t=3"),
    "q_posterior prev_t < -1": (lambda: SCHED.q_posterior(LOG_X, LOG_X, 3, -2), r"prev_t=-2 is outside \[-1, 10\)"),
    "q_posterior prev_t > t": (lambda: SCHED.q_posterior(LOG_X, LOG_X, torch.tensor([3, 4]), torch.tensor([1, 5])),
                               r"prev_t=\[1, 5\] for t=\[3, 4\]"),
    "q_pred_one_timestep t = -1": (lambda: SCHED.q_pred_one_timestep(LOG_X, -1), r"t=-1 is outside \[0, 10\)"),
    "q_pred_one_timestep t > T": (lambda: SCHED.q_pred_one_timestep(LOG_X, 12), r"t=12"),
    "add_noise t = T": (lambda: SCHED.add_noise(X, torch.tensor([0, 10])), r"timesteps holds 10, outside \[0, 10\)"),
    "add_noise fractional": (lambda: SCHED.add_noise(X, torch.tensor([0.5, 1.0])), r"0\.5"),
    "add_noise negative int": (lambda: SCHED.add_noise(X, -2), r"timesteps=-2"),
    "compute_loss negative t": (lambda: SCHED.compute_loss(LOGITS, X, X, torch.tensor([-1, 0])), r"timesteps holds -1"),
    "jump_to_start_nll t > T": (lambda: SCHED.jump_to_start_nll(LOGITS, X, X, torch.tensor([2, 11])), r"holds 11"),
    "step fractional float": (lambda: step_at(3.7), r"3\.7"),
    "step fractional tensor": (lambda: step_at(torch.tensor(3.7)), r"3\.7"),
    "step t = T": (lambda: step_at(10), r"timestep=10 is outside \[0, 10\)"),
    "step negative": (lambda: step_at(-1), r"timestep=-1"),
    "step bool": (lambda: step_at(True), r"True"),
    "step t not in timesteps": (lambda: step_at(4, steps=4), r"timestep 4 is not in the scheduler's timesteps"),
    "previous_timestep fractional": (lambda: SCHED.previous_timestep(3.7), r"3\.7"),
    "sample_prior zero batch": (lambda: SCHED.sample_prior((0, 4)), r"\(0, 4\)"),
    "sample_prior negative length": (lambda: SCHED.sample_prior((2, -1)), r"\(2, -1\)"),
    "index_to_log_onehot id = K": (lambda: SCHED.index_to_log_onehot(torch.tensor([[0, 5]])), r"class id 5"),
    "prior_kl negative id": (lambda: SCHED.prior_kl(torch.tensor([[0, -1]])), r"class id -1"),
    "compute_loss x_t id = K": (lambda: SCHED.compute_loss(LOGITS, X, with_value(X, (1, 2), 7), TWO_T), r"x_t holds class id 7"),
}


@pytest.mark.parametrize("call,match", SCHEDULER_NUMBERS.values(), ids=SCHEDULER_NUMBERS.keys())
def test_scheduler_numbers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("bad", [0, -3, 11, 2.5, 2.0, True, None])
def test_set_timesteps_refuses(bad):
    with pytest.raises(ValueError, match=rf"num_inference_steps must be an integer in \[1, 10\], got {re.escape(repr(bad))}"):
        MultinomialScheduler(num_classes=K, num_train_timesteps=T).set_timesteps(bad)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=K, num_train_timesteps=True), r"num_train_timesteps .* got True"),
    (dict(num_classes=K, num_train_timesteps=0), r"got 0"),
    (dict(num_classes=K, num_train_timesteps=2.5), r"got 2\.5"),
    (dict(num_classes=3.0), r"num_classes .* got 3\.0"),
])
def test_scheduler_config_refuses(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultinomialScheduler(**kwargs)


PIPELINE_NUMBERS = {
    "num_inference_steps 0": (text_pipe, dict(num_inference_steps=0), r"num_inference_steps .* got 0"),
    "num_inference_steps negative": (text_pipe, dict(num_inference_steps=-1), r"got -1"),
    "num_inference_steps > T": (text_pipe, dict(num_inference_steps=11), r"\[1, 10\], got 11"),
    "num_inference_steps fractional": (text_pipe, dict(num_inference_steps=2.5), r"got 2\.5"),
    "num_inference_steps bool": (text_pipe, dict(num_inference_steps=True), r"got True"),
    "batch_size 0": (text_pipe, dict(batch_size=0), r"batch_size must be a positive integer, got 0"),
    "batch_size negative": (text_pipe, dict(batch_size=-2), r"batch_size .* got -2"),
    "batch_size fractional": (text_pipe, dict(batch_size=1.5), r"batch_size .* got 1\.5"),
    "seq_len 0": (text_pipe, dict(seq_len=0), r"seq_len must be a positive integer, got 0"),
    "seq_len negative": (text_pipe, dict(seq_len=-3), r"seq_len .* got -3"),
    "seq_len > max_seq_len": (text_pipe, dict(seq_len=9), r"seq_len=9 exceeds the denoiser's max_seq_len=8"),
    "height 0": (map_pipe, dict(height=0), r"height must be a positive integer, got 0"),
    "width 0": (map_pipe, dict(width=0), r"width must be a positive integer, got 0"),
    "height negative": (map_pipe, dict(height=-4), r"height .* got -4"),
    "width fractional": (map_pipe, dict(width=2.5), r"width .* got 2\.5"),
    "unknown output_type": (text_pipe, dict(output_type="bogus"), r"output_type 'bogus'"),
    "pil output of sequences": (text_pipe, dict(output_type="pil"), r"output_type='pil' .* \(8,\)"),
    "known_mask not bool": (text_pipe, dict(known_ids=torch.zeros(1, 8, dtype=torch.long),
                                            known_mask=torch.ones(1, 8, dtype=torch.long)), r"known_mask .* torch\.int64"),
}


@pytest.mark.parametrize("make,kwargs,match", PIPELINE_NUMBERS.values(), ids=PIPELINE_NUMBERS.keys())
def test_pipeline_call_numbers(make, kwargs, match, monkeypatch):
    pipe = make()
    calls = []
    monkeypatch.setattr(pipe.scheduler, "sample_prior", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)
    assert not calls  # refused before sampling anything


def zero_logits(x_t, t):
    return torch.zeros(x_t.shape[0], K, *x_t.shape[1:])


EVALUATION_NUMBERS = {
    "negative_elbo timesteps_per_batch -1": (lambda: negative_elbo(zero_logits, SCHED, X, timesteps_per_batch=-1),
                                             r"timesteps_per_batch .* got -1"),
    "negative_elbo timesteps_per_batch 0": (lambda: negative_elbo(zero_logits, SCHED, X, timesteps_per_batch=0), r"got 0"),
    "negative_elbo timesteps_per_batch 2.5": (lambda: negative_elbo(zero_logits, SCHED, X, timesteps_per_batch=2.5),
                                              r"got 2\.5"),
    "negative_elbo_estimate no example": (lambda: negative_elbo_estimate(zero_logits, SCHED, X[:0]), r"x_start .* \(0, 6\)"),
    "diffusion_negative_elbo batch_size 0": (lambda: diffusion_negative_elbo(tiny_transformer(), SCHED, X, batch_size=0),
                                             r"batch_size .* got 0"),
    "diffusion_negative_elbo repetitions 0": (
        lambda: diffusion_negative_elbo(tiny_transformer(), SCHED, X, repetitions=0, estimate=True), r"repetitions .* got 0"),
    "diffusion_negative_elbo timesteps_per_batch -4": (
        lambda: diffusion_negative_elbo(tiny_transformer(), SCHED, X, timesteps_per_batch=-4), r"got -4"),
    "diffusion_negative_elbo no example": (lambda: diffusion_negative_elbo(tiny_transformer(), SCHED, X[:0]),
                                           r"input_ids .* \(0, 6\)"),
    "bits_per_unit units 0": (lambda: bits_per_unit(torch.tensor([1.0, 2.0]), 0), r"units_per_example .* got 0"),
    "bits_per_unit NaN": (lambda: bits_per_unit(torch.tensor([1.0, math.nan]), 6), r"nan at example 1"),
    "flow_negative_log_likelihood batch_size -1": (lambda: flow_negative_log_likelihood(None, X, batch_size=-1),
                                                   r"batch_size .* got -1"),
    "flow_negative_log_likelihood num_samples 0": (lambda: flow_negative_log_likelihood(None, X, num_samples=0),
                                                   r"num_samples .* got 0"),
}


@pytest.mark.parametrize("call,match", EVALUATION_NUMBERS.values(), ids=EVALUATION_NUMBERS.keys())
def test_evaluation_numbers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- 2. non-finite numbers

NAN_AT_1 = with_value(LOGITS, (1, 2, 3), math.nan)
INF_AT_0 = with_value(LOGITS, (0, 0, 0), math.inf)

NON_FINITE = {
    "compute_loss NaN": (lambda: SCHED.compute_loss(NAN_AT_1, X, X, TWO_T), r"model_output holds 1 non-finite .* timesteps \[7\] \(examples \[1\]\)"),
    "compute_loss inf": (lambda: SCHED.compute_loss(INF_AT_0, X, X, TWO_T), r"model_output .* timesteps \[2\]"),
    "jump_to_start_nll NaN": (lambda: SCHED.jump_to_start_nll(NAN_AT_1, X, X, TWO_T), r"model_output .* timesteps \[7\]"),
    "jump_to_start_nll -inf": (lambda: SCHED.jump_to_start_nll(-INF_AT_0, X, X, 4), r"model_output .* timestep 4"),
    "step NaN": (lambda: step_at(9, logits=NAN_AT_1), r"model_output holds 1 non-finite values .* timestep 9"),
    "step inf": (lambda: step_at(5, logits=INF_AT_0, steps=10), r"model_output .* timestep 5"),
    "q_pred NaN": (lambda: SCHED.q_pred(with_value(LOG_X, (0, 1, 1), math.nan), 3), r"log_x_start .* nan"),
    "q_posterior +inf": (lambda: SCHED.q_posterior(LOG_X, with_value(LOG_X, (0, 1, 1), math.inf), 3), r"log_x_t .* inf"),
    "q_pred_one_timestep NaN": (lambda: SCHED.q_pred_one_timestep(with_value(LOG_X, (1, 0, 0), math.nan), 3), r"log_x_t .* nan"),
    "sample_categorical NaN": (lambda: SCHED.sample_categorical(with_value(LOG_X, (1, 0, 0), math.nan)), r"log_probs .* nan"),
    "sample_categorical all -inf": (lambda: SCHED.sample_categorical(with_value(LOG_X, (1, slice(None), 0), -math.inf)), r"log_probs .* -inf"),
}


@pytest.mark.parametrize("call,match", NON_FINITE.values(), ids=NON_FINITE.keys())
def test_non_finite_tensors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


class NaNDenoiser(ModelMixin, ConfigMixin):
    """A corrupted denoiser: NaN logits (it used to sample class 0, a line of spaces, everywhere)."""

    @register_to_config
    def __init__(self, num_classes=K, max_seq_len=L, num_train_timesteps=T):
        super().__init__()
        self.register_buffer("unused", torch.zeros(1))  # the pipeline takes its device from the denoiser's tensors

    def forward(self, sample, timestep):
        return BaseOutput(sample=torch.full((sample.shape[0], K, sample.shape[1]), math.nan))


def test_huge_but_finite_logits_are_accepted():
    # the finiteness check sums the logits; a sum that overflows is settled exactly, not reported as NaN or inf
    huge = LOGITS.clone()
    huge[:, 0] = 3e38
    assert not torch.isfinite(huge.sum())
    assert step_at(9, logits=huge).prev_sample.shape == X.shape
    assert torch.isfinite(SCHED.compute_loss(huge, X, X, TWO_T)).all()


def test_pipeline_with_nan_denoiser_refuses_to_sample():
    pipe = DiscreteDiffusionPipeline(denoiser=NaNDenoiser(), scheduler=MultinomialScheduler(num_classes=K, num_train_timesteps=T))
    pipe.set_progress_bar_config(disable=True)
    with pytest.raises(ValueError, match=r"model_output holds 60 non-finite values .* at timestep 9 \(examples \[0, 1\]\)"):
        pipe(batch_size=2, output_type="pt")
    with pytest.raises(ValueError, match=r"model_output holds 180 .* timesteps \[0, 1, 2\] \(examples \[0, 1, 2, 3, 4, 5\]\)"):
        negative_elbo(lambda x_t, t: NaNDenoiser()(x_t, t).sample, SCHED, X[:, :L], timesteps_per_batch=3)


@pytest.mark.parametrize("make,sample", [(tiny_transformer, X), (tiny_unet, torch.zeros(2, 4, 8, dtype=torch.long))],
                         ids=["transformer", "unet"])
@pytest.mark.parametrize("timestep,match", [
    (math.nan, r"timestep holds nan"),
    (torch.tensor([1.0, math.inf]), r"timestep holds inf"),
    (10, r"timestep holds 10, outside \[0, 10\)"),
    (torch.tensor([-1, 3]), r"timestep holds -1"),
    (True, r"True"),
])
def test_denoiser_forward_timesteps(make, sample, timestep, match):
    with pytest.raises(ValueError, match=match):
        make()(sample, timestep)


def test_denoiser_forward_accepts_fractional_timesteps():
    tiny_transformer()(X, torch.tensor([0.5, 9.5]))  # documented: the embedding handles fractional t in [0, T)


def overwrite_weights_with_nan(path, name):
    """Overwrite the bytes of tensor `name` in a safetensors file with 0xff (a float32 NaN)."""
    data = bytearray(path.read_bytes())
    header_size = int.from_bytes(data[:8], "little")
    start, end = json.loads(data[8 : 8 + header_size])[name]["data_offsets"]
    offset = 8 + header_size
    data[offset + start : offset + start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make,name", [(tiny_transformer, "token_embedding.weight"), (tiny_unet, "conv_in.weight")],
                         ids=["transformer", "unet"])
def test_non_finite_weights_are_refused_at_load(tmp_path, make, name):
    model = make()
    model.save_pretrained(tmp_path / "model")
    weights = tmp_path / "model" / WEIGHTS
    overwrite_weights_with_nan(weights, name)
    with pytest.raises(ValueError, match=rf"parameter {re.escape(name)} loaded from {re.escape(str(weights))} holds 2 non-finite"):
        type(model).from_pretrained(tmp_path / "model")


def test_pipeline_from_pretrained_refuses_non_finite_weights(tmp_path):
    map_pipe().save_pretrained(tmp_path)
    weights = tmp_path / "denoiser" / WEIGHTS
    overwrite_weights_with_nan(weights, "conv_out.bias")
    with pytest.raises(ValueError, match=rf"conv_out\.bias loaded from {re.escape(str(weights))}"):
        DiscreteDiffusionPipeline.from_pretrained(tmp_path)


# ---------------------------------------------------------------- 3. mismatches

@pytest.mark.parametrize("denoiser,scheduler,vocabulary,match", [
    (dict(), dict(num_classes=K, num_train_timesteps=1000), None,
     r"num_train_timesteps=10 but the scheduler has num_train_timesteps=1000"),
    (dict(), dict(num_classes=4, num_train_timesteps=T), None, r"num_classes=5 but the scheduler has num_classes=4"),
    (dict(), dict(num_classes=K, num_train_timesteps=T), list("abcd"), r"4 symbols but the scheduler has num_classes=5"),
], ids=["T", "K", "vocabulary"])
def test_pipeline_refuses_mismatched_components(denoiser, scheduler, vocabulary, match):
    with pytest.raises(ValueError, match=match):
        DiscreteDiffusionPipeline(denoiser=tiny_transformer(**denoiser), scheduler=MultinomialScheduler(**scheduler),
                                  vocabulary=None if vocabulary is None else CharVocabulary(vocabulary))


def test_pipeline_from_pretrained_refuses_a_scheduler_of_another_T(tmp_path):
    text_pipe().save_pretrained(tmp_path)
    config_file = tmp_path / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config["num_train_timesteps"] = 1000
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"num_train_timesteps=10 but the scheduler has num_train_timesteps=1000"):
        DiscreteDiffusionPipeline.from_pretrained(tmp_path)


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("load_kwargs", [{}, dict(low_cpu_mem_usage=False, ignore_mismatched_sizes=True)],
                         ids=["default", "ignore_mismatched_sizes"])
@pytest.mark.parametrize("make,change,match", [
    (tiny_transformer, dict(hidden_size=16), r"token_embedding\.weight has shape \(5, 8\), but the config .* shape \(5, 16\)"),
    (tiny_transformer, dict(max_seq_len=4), r"learned_positions\.weight has shape \(8, 8\), .* shape \(4, 8\)"),
    (tiny_transformer, dict(num_layers=2), r"has no weights for 12 tensors .* blocks\.1\."),
    (tiny_unet, dict(base_channels=8), r"class_embedding\.weight has shape \(5, 4\), .* shape \(5, 8\)"),
], ids=["hidden_size", "max_seq_len", "num_layers", "unet base_channels"])
def test_config_that_does_not_match_the_weights_is_refused(tmp_path, make, change, match, load_kwargs):
    model = make()
    model.save_pretrained(tmp_path)
    edit_config(tmp_path, **change)
    with pytest.raises(ValueError, match=match) as error:
        type(model).from_pretrained(tmp_path, **load_kwargs)
    assert str(tmp_path / WEIGHTS) in str(error.value)


def test_weights_of_a_smaller_model_are_refused(tmp_path):
    tiny_transformer(num_layers=2).save_pretrained(tmp_path)
    edit_config(tmp_path, num_layers=1)
    with pytest.raises(ValueError, match=r"holds 12 tensors that the model .* has no place for: blocks\.1\."):
        MultinomialTransformer.from_pretrained(tmp_path)


def test_missing_weights_file_names_the_safetensors_path(tmp_path):
    text_pipe().save_pretrained(tmp_path)
    weights = tmp_path / "denoiser" / WEIGHTS
    weights.unlink()
    for load in (lambda: DiscreteDiffusionPipeline.from_pretrained(tmp_path),
                 lambda: MultinomialTransformer.from_pretrained(tmp_path / "denoiser"),
                 lambda: MultinomialTransformer.from_pretrained(tmp_path, subfolder="denoiser")):
        with pytest.raises(FileNotFoundError, match=rf"No weights file {re.escape(str(weights))}"):
            load()


@pytest.mark.parametrize("damage,match", [
    (lambda data: data[: len(data) // 2], r"incomplete metadata"),
    (lambda data: data[:5], r"header too small"),
    (lambda data: b"\xff" * 8 + data[8:], r"not a readable safetensors file"),
], ids=["truncated", "header only", "overwritten header size"])
def test_unreadable_safetensors_names_the_file(tmp_path, damage, match):
    tiny_unet().save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(OSError, match=match) as error:
        SegmentationUNet.from_pretrained(tmp_path)
    assert str(weights) in str(error.value)


def test_loading_still_works_and_round_trips(tmp_path):
    model = tiny_unet()
    model.save_pretrained(tmp_path)
    loaded, info = SegmentationUNet.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    sample = torch.zeros(1, 4, 8, dtype=torch.long)
    assert torch.equal(loaded(sample, 3).sample, model(sample, 3).sample)


# ---------------------------------------------------------------- 4. clear messages

@pytest.mark.parametrize("returned,match", [
    (None, r"callback_on_step_end must return a dict .* got NoneType None at step 0 \(t=9\)"),
    ([1], r"got list \[1\]"),
    ({"sample": torch.zeros(1, 8)}, r"'sample' that is not an integer tensor of shape \(1, 8\): got torch\.float32"),
    ({"sample": torch.zeros(1, 3, dtype=torch.long)}, r"got torch\.int64 tensor of shape \(1, 3\)"),
], ids=["None", "list", "float sample", "wrong shape"])
def test_callback_return_value(returned, match):
    with pytest.raises(TypeError, match=match):
        text_pipe()(callback_on_step_end=lambda pipe, i, t, kwargs: returned, output_type="pt")


def test_callback_not_callable_and_empty_dict():
    with pytest.raises(TypeError, match=r"callback_on_step_end must be callable, got 3"):
        text_pipe()(callback_on_step_end=3)
    out = text_pipe()(callback_on_step_end=lambda pipe, i, t, kwargs: {}, output_type="pt", num_inference_steps=2)
    assert out.samples.shape == (1, 8)  # an empty dict changes nothing, as in diffusers


@pytest.mark.parametrize("make,change,match", [
    (tiny_transformer, dict(max_seq_len=-5), r"max_seq_len=-5 must be an integer >= 1"),
    (tiny_transformer, dict(hidden_size=0), r"hidden_size=0"),
    (tiny_transformer, dict(num_layers=2.5), r"num_layers=2\.5"),
    (tiny_transformer, dict(num_train_timesteps=0), r"num_train_timesteps=0"),
    (tiny_transformer, dict(dropout=1.5), r"dropout=1\.5"),
    (tiny_transformer, dict(mlp_ratio=math.nan), r"mlp_ratio=nan"),
    (tiny_unet, dict(sample_size=(0, 8)), r"sample_size=\(0, 8\)"),
    (tiny_unet, dict(sample_size=-4), r"sample_size=-4"),
    (tiny_unet, dict(channel_multipliers=(1, 1.5)), r"channel_multipliers=\(1, 1\.5\)"),
    (tiny_unet, dict(base_channels=0), r"base_channels=0"),
    (tiny_unet, dict(num_train_timesteps=-1), r"num_train_timesteps=-1"),
    (tiny_unet, dict(class_embedding_dim=0), r"class_embedding_dim=0"),
])
def test_denoiser_config_numbers(make, change, match):
    with pytest.raises(ValueError, match=match):
        make(**change)


@pytest.mark.parametrize("make,sample,match", [
    (tiny_transformer, torch.zeros(2, 0, dtype=torch.long), r"sample must not be empty .* \(2, 0\)"),
    (tiny_unet, torch.zeros(0, 4, 8, dtype=torch.long), r"sample must not be empty .* \(0, 4, 8\)"),
    (tiny_transformer, torch.tensor([[0, 5]]), r"class id 5"),
])
def test_denoiser_forward_samples(make, sample, match):
    with pytest.raises(ValueError, match=match):
        make()(sample, 1)


# ---------------------------------------------------------------- 5. one host sync per public call

@pytest.fixture
def host_syncs(monkeypatch):
    """Counts the tensor-to-host conversions (`tolist`, `item`, `bool`, `int`, `float`) made while it is active."""
    counter = {"n": 0}
    for name in ("tolist", "item", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counter["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return counter


def test_each_public_call_syncs_once(host_syncs):
    sched = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    sched.set_timesteps(5)
    sched.step(LOGITS, 9, X)  # builds the cache of previous timesteps (one host copy per set_timesteps)
    model, unet = tiny_transformer(), tiny_unet()
    calls = {
        "add_noise": lambda: sched.add_noise(X, TWO_T),
        "compute_loss": lambda: sched.compute_loss(LOGITS, X, X, TWO_T),
        "jump_to_start_nll": lambda: sched.jump_to_start_nll(LOGITS, X, X, TWO_T),
        "prior_kl": lambda: sched.prior_kl(X),
        "step": lambda: sched.step(LOGITS, 7, X),
        "q_posterior": lambda: sched.q_posterior(LOG_X, LOG_X, TWO_T, torch.tensor([-1, 3])),
        "transformer forward": lambda: model(X, TWO_T),
        "unet forward": lambda: unet(torch.zeros(2, 4, 8, dtype=torch.long), TWO_T),
    }
    for name, call in calls.items():
        host_syncs["n"] = 0
        call()
        assert host_syncs["n"] == 1, (name, host_syncs["n"])


# ---------------------------------------------------------------- importance sampling of t

@pytest.mark.parametrize("call,match", [
    (lambda: ImportanceTimestepSampler(0), r"num_train_timesteps .* got 0"),
    (lambda: ImportanceTimestepSampler(T, min_count=-1), r"min_count .* got -1"),
    (lambda: ImportanceTimestepSampler(T, decay=1.0), r"decay .* got 1\.0"),
    (lambda: ImportanceTimestepSampler(T, uniform_mix=0.0), r"uniform_mix .* got 0\.0"),
    (lambda: ImportanceTimestepSampler(T).sample(0), r"batch_size .* got 0"),
    (lambda: ImportanceTimestepSampler(T).update(torch.tensor([-1, 2]), torch.ones(2)), r"timesteps holds -1"),
    (lambda: ImportanceTimestepSampler(T).update(torch.tensor([10]), torch.ones(1)), r"holds 10, outside \[0, 10\)"),
    (lambda: ImportanceTimestepSampler(T).update(torch.tensor([3.7]), torch.ones(1)), r"3\.7"),
    (lambda: ImportanceTimestepSampler(T).update(torch.tensor([1, 2]), torch.tensor([1.0, math.nan])), r"losses holds nan"),
], ids=["T", "min_count", "decay", "uniform_mix", "batch_size", "negative t", "t = T", "fractional t", "NaN loss"])
def test_importance_sampler_refuses(call, match):
    with pytest.raises(ValueError, match=match):
        call()
