"""Bad input to the flow models: sizes of 0 or below in their configs, `batch_size=0` / `num_samples=0`, and NaN
weights, each a clear error naming the value or the parameter, never a silent reinterpretation (all at once, a NaN
loss, samples of zeros)."""

import pytest
import torch

from hf_multinomial.flows import ArgmaxFlowConfig, ArgmaxFlowModel, SegmentationFlowConfig, SegmentationFlowModel

TEXT = dict(seq_len=6, flow_type="coupling", hidden_size=8, num_layers=1, num_flow_steps=1, num_mixtures=2,
            context_size=4, context_layers=1)
MAPS = dict(num_classes=2, height=2, width=2, num_levels=1, num_steps=1, encoder_steps=1, context_channels=2,
            latent_channels=2, mid_channels=4, depth=1, growth=4)


def text_flow(**overrides):
    torch.manual_seed(0)
    return ArgmaxFlowModel(ArgmaxFlowConfig(**{**TEXT, **overrides})).eval()


def map_flow(**overrides):
    torch.manual_seed(0)
    return SegmentationFlowModel(SegmentationFlowConfig(**{**MAPS, **overrides})).eval()


TEXT_SIZES = ["seq_len", "hidden_size", "num_layers", "num_flow_steps", "num_mixtures", "context_size"]


@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("name", TEXT_SIZES)
def test_argmax_flow_config_sizes(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value}"):
        ArgmaxFlowConfig(**{**TEXT, name: value})


@pytest.mark.parametrize("name, value, match", [
    ("context_layers", -1, "context_layers must be an integer >= 0, got -1"),
    ("num_classes", 1, "num_classes must be an integer >= 2, got 1"),
    ("num_mixtures", 2.5, "num_mixtures must be a positive integer, got 2.5"),
    ("seq_len", True, "seq_len must be a positive integer, got True"),
    ("input_dropout", 1.0, r"input_dropout must be a number in \[0, 1\), got 1.0"),
    ("input_dropout", -0.1, r"input_dropout must be a number in \[0, 1\), got -0.1"),
    ("cartesian_base", 1, "cartesian_base must be None or an integer >= 2, got 1"),
])
def test_argmax_flow_config_other_values(name, value, match):
    with pytest.raises(ValueError, match=match):
        ArgmaxFlowConfig(**{**TEXT, name: value})


def test_context_layers_zero_is_allowed():
    assert ArgmaxFlowConfig(**{**TEXT, "context_layers": 0}).context_layers == 0


MAP_SIZES = ["height", "width", "num_levels", "num_steps", "encoder_steps", "context_channels", "latent_channels",
             "mid_channels", "depth", "growth", "num_blocks"]


@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("name", MAP_SIZES)
def test_segmentation_flow_config_sizes(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value}"):
        SegmentationFlowConfig(**{**MAPS, name: value})


def test_segmentation_flow_config_dropout():
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.5"):
        SegmentationFlowConfig(**{**MAPS, "dropout": 1.5})


@pytest.fixture(scope="module", params=["text", "maps"])
def flow_and_data(request):
    if request.param == "text":
        return text_flow(), torch.randint(0, 27, (3, 6), generator=torch.Generator().manual_seed(0))
    return map_flow(), torch.randint(0, 2, (3, 2, 2), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size must be a positive integer or None, got 0"),
    (dict(batch_size=-2), "batch_size must be a positive integer or None, got -2"),
    (dict(num_samples=0), "num_samples must be a positive integer, got 0"),
    (dict(num_samples=-1), "num_samples must be a positive integer, got -1"),
])
def test_log_likelihood_arguments(flow_and_data, kwargs, match):
    model, x = flow_and_data
    with pytest.raises(ValueError, match=match):
        model.log_likelihood(x, **kwargs)


@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_log_likelihood_valid_batch_sizes(flow_and_data, batch_size):
    model, x = flow_and_data
    bound = model.log_likelihood(x, num_samples=2, generator=torch.Generator().manual_seed(1), batch_size=batch_size)
    assert bound.shape == (3,) and bool(torch.isfinite(bound).all()) and bool((bound <= 0).all())


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(batch_size=2, max_rounds=0), "max_rounds must be a positive integer, got 0"),
])
def test_sample_arguments(flow_and_data, kwargs, match):
    model, _ = flow_and_data
    with pytest.raises(ValueError, match=match):
        model.sample(**kwargs)


def _poison(model, name):
    with torch.no_grad():
        dict(model.named_parameters())[name].fill_(float("nan"))


@pytest.mark.parametrize("kind", ["text", "maps", "vae"])
def test_loading_non_finite_weights_names_the_parameter(kind, tmp_path):
    model = {"text": text_flow, "maps": map_flow, "vae": lambda: map_flow(vae=True)}[kind]()
    name = [n for n, p in model.named_parameters() if n.startswith("flow.")][0]
    _poison(model, name)
    model.save_pretrained(tmp_path)
    cls = type(model)
    with pytest.raises(ValueError, match=rf"{cls.__name__} in '{tmp_path}' are not finite: the parameter "
                                         rf"'{name}' \(\d+ of \d+ values are NaN\)"):
        cls.from_pretrained(tmp_path)
    from transformers import AutoModel

    with pytest.raises(ValueError, match=f"'{name}'"):
        AutoModel.from_pretrained(tmp_path)


def test_loading_finite_weights_still_works(tmp_path):
    model = text_flow()
    model.save_pretrained(tmp_path)
    loaded = ArgmaxFlowModel.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.parametrize("kind", ["text", "maps"])
def test_sampling_a_nan_model_raises_instead_of_zeros(kind):
    model = text_flow() if kind == "text" else map_flow()
    name = [n for n, _ in model.named_parameters() if n.startswith("flow.")][0]
    _poison(model, name)
    with pytest.raises(RuntimeError, match=rf"drew non-finite values .*the parameter '{name}'"):
        model.sample(2, generator=torch.Generator().manual_seed(0))
