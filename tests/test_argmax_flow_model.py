"""The text argmax flows as transformers models: the bound and the IWBO against an exact likelihood, Auto classes,
trust_remote_code, and the training script with `hf-multinomial bpc`."""

import json
import lzma
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel

import hf_multinomial  # noqa: F401  (registers the Auto classes)
from hf_multinomial.cli import main as cli_main
from hf_multinomial.data.text import bundled_text8_path
from hf_multinomial.flows import ArgmaxFlowConfig, ArgmaxFlowModel, DensityFlow
from hf_multinomial.training import run as training_run
from hf_multinomial.training.argmax_flow import TASK
from remote_code import BLOCK_HF_MULTINOMIAL


def small_model(**overrides):
    config = dict(num_classes=27, seq_len=6, flow_type="coupling", inverse="thresholding", cartesian_base=3,
                  hidden_size=16, num_layers=1, num_flow_steps=2, num_mixtures=4, context_size=8, context_layers=1)
    config.update(overrides)
    torch.manual_seed(0)
    return ArgmaxFlowModel(ArgmaxFlowConfig(**config)).eval()


def with_standard_normal_density(model):
    """The model with p(v) the standard Gaussian itself (a density flow without layers), whose P(x) is known."""
    model.flow = DensityFlow(model.flow.seq_len, model.flow.width, [])
    return model


# The final gap allowed at k = 1000. Gumbel thresholding of an untrained q converges slowly: its q(v | x) vanishes
# faster than p(v) just below the threshold, so the importance weights are heavy-tailed (the gap is still 0.19 nats
# at k = 1000, a ninth of its k = 1 value).
FINAL_GAP = {"thresholding": 0.03, "gumbel": 0.03, "gumbel_thresholding": 0.25}


@pytest.mark.parametrize("inverse", sorted(FINAL_GAP))
def test_bound_and_iwbo_against_the_exact_likelihood_of_a_standard_normal(inverse):
    # p(v) standard normal on R^3 and x = argmax(v): P(x) = 1/3 exactly for every x, so every bound is below
    # log(1/3) in expectation, and the importance-weighted bound approaches it as k grows.
    model = with_standard_normal_density(ArgmaxFlowModel(ArgmaxFlowConfig(
        num_classes=3, seq_len=1, inverse=inverse, hidden_size=4, num_layers=1, context_layers=0,
        context_size=4))).double().eval()
    x = torch.tensor([[0], [1], [2]]).repeat(400, 1)
    generator = torch.Generator().manual_seed(0)
    exact = math.log(1 / 3)
    previous_gap = first_gap = None
    for k in (1, 10, 100, 1000):
        iwbo = model.log_likelihood(x, num_samples=k, generator=generator, batch_size=60_000)
        mean, stderr = iwbo.mean().item(), iwbo.std().item() / math.sqrt(len(iwbo))
        assert mean < exact + 3 * stderr
        gap = exact - mean
        if previous_gap is not None:
            assert gap < previous_gap + 3 * stderr
        previous_gap = gap
        first_gap = first_gap if first_gap is not None else gap
    assert first_gap > 0.5  # an untrained q is far from the posterior at k = 1...
    assert abs(previous_gap) < FINAL_GAP[inverse]  # ...and the IWBO closes most of the gap
    assert previous_gap < first_gap / 5
    # The one-draw bound of forward is the k = 1 IWBO.
    out = model(x, generator=torch.Generator().manual_seed(1))
    assert out.log_likelihood_bound.shape == (len(x),)
    assert out.log_likelihood_bound.mean().item() < exact + 3 * out.log_likelihood_bound.std().item() / math.sqrt(len(x))
    assert torch.allclose(out.loss, -out.log_likelihood_bound.mean())
    assert torch.allclose(out.bits_per_dim, out.loss / math.log(2))


def test_cartesian_binary_bound_is_below_the_exact_likelihood():
    # Binary digits with a standard normal p(v): each of the d = 2 bits is 1 with probability 1/2, so P(x) = 1/4 for
    # the K = 4 classes.
    model = with_standard_normal_density(ArgmaxFlowModel(ArgmaxFlowConfig(
        num_classes=4, seq_len=1, cartesian_base=2, hidden_size=4, num_layers=1, context_layers=0,
        context_size=4))).double().eval()
    x = torch.arange(4).repeat(500)[:, None]
    iwbo = model.log_likelihood(x, num_samples=1000, generator=torch.Generator().manual_seed(0), batch_size=500_000)
    assert iwbo.mean().item() < math.log(1 / 4) + 3 * iwbo.std().item() / math.sqrt(len(iwbo))
    assert abs(iwbo.mean().item() - math.log(1 / 4)) < 0.03


@pytest.mark.parametrize("flow_type", ["autoregressive", "coupling"])
@pytest.mark.parametrize("inverse", ["thresholding", "gumbel", "uniform_dequantization", "variational_dequantization"])
def test_forward_sample_and_gradients(flow_type, inverse):
    model = small_model(flow_type=flow_type, inverse=inverse).train()
    ids = torch.randint(0, 27, (3, 6), generator=torch.Generator().manual_seed(0))
    out = model(ids, generator=torch.Generator().manual_seed(0))
    assert out.loss.shape == () and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.flow.parameters() if p.requires_grad)
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 6) and samples.dtype == torch.long
    assert samples.min() >= 0 and samples.max() < 27
    again = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)


def test_bad_input_is_rejected_with_the_value():
    model = small_model()
    with pytest.raises(ValueError, match="27"):
        model(torch.full((2, 6), 27))
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        model(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="flow_type"):
        ArgmaxFlowConfig(flow_type="spline")


def test_auto_classes_round_trip(tmp_path):
    model = small_model(flow_type="autoregressive")
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, ArgmaxFlowConfig) and config.cartesian_base == 3
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is ArgmaxFlowModel
    ids = torch.randint(0, 27, (2, 6), generator=torch.Generator().manual_seed(1))
    a = model.log_likelihood(ids, num_samples=3, generator=torch.Generator().manual_seed(2))
    b = loaded.log_likelihood(ids, num_samples=3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(model.sample(3, generator=torch.Generator().manual_seed(3)),
                       loaded.sample(3, generator=torch.Generator().manual_seed(3)))


def test_trust_remote_code_without_the_package(tmp_path):
    model = small_model()
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"].endswith("ArgmaxFlowModel")
    expected = model.sample(3, generator=torch.Generator().manual_seed(4)).tolist()
    # A fresh interpreter in which `import hf_multinomial` fails: only the files saved with the model are used.
    script = BLOCK_HF_MULTINOMIAL + textwrap.dedent(f"""
        import json
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        print(json.dumps(model.sample(3, generator=torch.Generator().manual_seed(4)).tolist()))
    """)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "short.txt"
    with lzma.open(bundled_text8_path(), "rt") as f:
        path.write_text(f.read(40_000))
    return path


def test_training_script_saves_model_vocabulary_card_and_bpc_works(text_file, tmp_path, capsys):
    out = tmp_path / "flow"
    stats = training_run.train(TASK, training_run.parse_arguments(TASK, [
        "--preset", "tiny", "--text_file", str(text_file), "--cache_dir", str(tmp_path / "cache"),
        "--output_dir", str(out), "--max_train_steps", "30", "--num_validation_sequences", "8",
        "--num_card_samples", "1", "--report_to", "none",
    ]))
    assert stats["global_step"] == 30
    assert stats["history"][-1]["bpc"] < stats["history"][0]["bpc"]
    assert math.isfinite(stats["validation_bpc"])
    for name in ("config.json", "model.safetensors", "vocabulary.json", "README.md", "train_results.json"):
        assert (out / name).is_file(), name
    capsys.readouterr()
    assert cli_main(["bpc", "--model", str(out), "--text-file", str(text_file), "--max-sequences", "8",
                     "--num-samples", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bound"] == "IWBO with k=4" and result["num_characters"] == 8 * 16
    assert 0 < result["bpc"] < 10
