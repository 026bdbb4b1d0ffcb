"""The bits-per-unit metric, the `hf-multinomial bpc` / `bpp` commands, and the segmentation training task."""

import json
import math
import os
import subprocess
import sys

import evaluate
import numpy as np
import pytest
import torch

from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer
from hf_multinomial.cli import main
from hf_multinomial.data import CharVocabulary, write_synthetic_gtfine
from hf_multinomial.evaluation import diffusion_negative_elbo
from hf_multinomial.metrics import BITS_PER_DIM_PATH, load_bits_per_dim


def test_bits_per_dim_metric_matches_formula():
    nll = [177.4, 100.0, 3.5]
    units = [256, 100, 7]
    expected = sum(nll) / sum(units) / math.log(2)
    assert math.isclose(load_bits_per_dim("character").compute(negative_log_likelihoods=nll, num_units=units)["bpc"], expected)
    assert math.isclose(load_bits_per_dim("pixel").compute(negative_log_likelihoods=nll, num_units=units)["bpp"], expected)
    metric = evaluate.load(BITS_PER_DIM_PATH)
    for n, u in zip(nll, units):
        metric.add(negative_log_likelihoods=n, num_units=u)
    assert math.isclose(metric.compute()["bpc"], expected)
    with pytest.raises(ValueError, match="not finite"):
        load_bits_per_dim().compute(negative_log_likelihoods=[float("inf")], num_units=[1])


@pytest.fixture(scope="module")
def text_pipeline_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("text_pipe")
    torch.manual_seed(0)
    denoiser = MultinomialTransformer(
        num_classes=27, max_seq_len=16, hidden_size=32, num_layers=1, num_heads=2, num_local_heads=1, local_window=4,
        num_train_timesteps=12,
    )
    DiscreteDiffusionPipeline(
        denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=27, num_train_timesteps=12), vocabulary=CharVocabulary.text8()
    ).save_pretrained(path)
    return path


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bpc_command_full_and_estimate(text_pipeline_dir, tmp_path, capsys):
    text = "the quick brown fox jumps over the lazy dog " * 3  # 132 characters -> 8 sequences of 16
    (tmp_path / "held_out.txt").write_text(text)
    assert main(["bpc", "--model", str(text_pipeline_dir), "--text-file", str(tmp_path / "held_out.txt")]) == 0
    full = last_json(capsys)
    assert full["num_examples"] == 8 and full["num_characters"] == 128
    # the same number computed directly from the scheduler and the metric's formula
    pipe = DiscreteDiffusionPipeline.from_pretrained(text_pipeline_dir)
    ids = torch.tensor(pipe.vocabulary.encode(text[:128])).view(8, 16)
    nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, ids, generator=torch.Generator().manual_seed(0))
    assert math.isclose(full["bpc"], float(nll.sum()) / 128 / math.log(2), rel_tol=1e-9)
    # an untrained model is close to uniform: about log2(27) = 4.75 bits
    assert 4.0 < full["bpc"] < 6.5

    assert main(["bpc", "--model", str(text_pipeline_dir), "--text-file", str(tmp_path / "held_out.txt"),
                 "--estimate", "--repetitions", "50", "--max-sequences", "4"]) == 0
    estimate = last_json(capsys)
    assert estimate["num_examples"] == 4 and "estimate" in estimate["bound"]
    assert abs(estimate["bpc"] - full["bpc"]) < 0.5


def test_bpc_command_sampler_bound(text_pipeline_dir, tmp_path, capsys):
    """`--num-inference-steps S`: the bound of the S-step sampler, the library's number; S = T is the full bound."""
    text = "the quick brown fox jumps over the lazy dog " * 3
    (tmp_path / "held_out.txt").write_text(text)
    base = ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(tmp_path / "held_out.txt"), "--no-update-card"]
    assert main(base) == 0
    full = last_json(capsys)
    assert main(base + ["--num-inference-steps", "12"]) == 0
    assert last_json(capsys)["bpc"] == full["bpc"]
    assert main(base + ["--num-inference-steps", "3"]) == 0
    three = last_json(capsys)
    assert "3-step sampler" in three["bound"] and three["bpc"] != full["bpc"]
    pipe = DiscreteDiffusionPipeline.from_pretrained(text_pipeline_dir)
    ids = torch.tensor(pipe.vocabulary.encode(text[:128])).view(8, 16)
    nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, ids, generator=torch.Generator().manual_seed(0),
                                  num_inference_steps=3)
    assert math.isclose(three["bpc"], float(nll.sum()) / 128 / math.log(2), rel_tol=1e-9)
    assert main(base + ["--num-inference-steps", "13"]) == 2
    assert "--num-inference-steps 13 exceeds the T=12 steps" in capsys.readouterr().err
    assert main(base + ["--num-inference-steps", "0"]) == 2
    assert "error:" in capsys.readouterr().err


def test_bpc_command_errors(text_pipeline_dir, tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("hello World")
    assert main(["bpc", "--model", str(text_pipeline_dir), "--text-file", str(tmp_path / "bad.txt")]) == 2
    assert "'W' at position 6" in capsys.readouterr().err
    assert main(["bpc", "--model", str(tmp_path), "--text-file", str(tmp_path / "bad.txt")]) == 2
    assert "model_index.json" in capsys.readouterr().err


def test_segmentation_training_and_bpp(tmp_path, capsys):
    from hf_multinomial.training import run as training_run
    from hf_multinomial.training.segmentation_diffusion import TASK

    out = tmp_path / "seg"
    stats = training_run.train(TASK, training_run.parse_arguments(TASK, ["--preset", "tiny", "--output_dir", str(out), "--max_train_steps", "60",
                              "--num_synthetic_maps", "64", "--report_to", "none", "--num_validation_sequences", "8",
                              "--num_card_samples", "4"]))
    history = [h["bpp"] for h in stats["history"]]
    assert np.mean(history[-15:]) < np.mean(history[:15]) - 0.3
    for name in ("model_index.json", "README.md", "samples.png", "train_results.json", "checkpoint-60"):
        assert (out / name).exists(), name
    card = (out / "README.md").read_text()
    assert "hf-multinomial" in card and "samples.png" in card

    assert main(["bpp", "--model", str(out), "--max-maps", "8", "--split", "test"]) == 0
    synthetic = last_json(capsys)
    assert synthetic["num_pixels"] == 8 * 16 * 32 and 0 < synthetic["bpp"] < 3.0

    root = tmp_path / "cityscapes"
    write_synthetic_gtfine(root, num_train=3, num_val=2)
    assert main(["bpp", "--model", str(out), "--data-root", str(root), "--estimate", "--repetitions", "3"]) == 0
    cityscapes = last_json(capsys)
    assert cityscapes["num_examples"] == 2

    # Both results were added to the card's model-index after the training's validation estimate.
    from huggingface_hub import ModelCard

    results = ModelCard.load(out / "README.md").data.eval_results
    assert [(r.dataset_type, r.dataset_split) for r in results] == [
        ("hf-multinomial/synthetic-street-maps", "validation"), ("hf-multinomial/synthetic-street-maps", "test"),
        ("cityscapes", "test")]
    assert all(r.metric_type == "bpp" for r in results)
    assert results[1].metric_value == pytest.approx(synthetic["bpp"], abs=1e-6)
    assert "all T=" in results[1].metric_config and results[1].dataset_args == {"num_examples": 8}
    assert results[2].metric_value == pytest.approx(cityscapes["bpp"], abs=1e-6)
    assert "mean of 3" in results[2].metric_config


def test_bpc_records_its_result_in_the_model_card(text_pipeline_dir, tmp_path, capsys):
    import shutil

    from huggingface_hub import ModelCard

    from hf_multinomial.flows import ArgmaxFlowConfig, ArgmaxFlowModel

    text = "the quick brown fox jumps over the lazy dog " * 3  # 132 characters -> 8 sequences of 16
    (tmp_path / "held_out.txt").write_text(text)
    card_text = "---\nlicense: apache-2.0\n---\n\n# A model\n"

    # A diffusion pipeline: the full-T bound, then the estimate; re-running a bound replaces its entry.
    pipe_dir = tmp_path / "pipe"
    shutil.copytree(text_pipeline_dir, pipe_dir)
    (pipe_dir / "README.md").write_text(card_text)
    bpc = ["bpc", "--model", str(pipe_dir), "--text-file", str(tmp_path / "held_out.txt")]
    assert main(bpc) == 0
    full = last_json(capsys)
    assert full["model_card"] == str(pipe_dir / "README.md")
    (entry,) = ModelCard.load(pipe_dir / "README.md").data.eval_results
    assert entry.metric_type == "bpc" and entry.metric_value == pytest.approx(full["bpc"], abs=1e-6)
    assert entry.metric_config == "negative ELBO, all T=12 steps" and entry.dataset_args == {"num_examples": 8}
    assert entry.dataset_name == "text file held_out.txt" and entry.dataset_split == "held_out.txt"
    assert main(bpc + ["--estimate", "--repetitions", "3", "--max-sequences", "4"]) == 0
    estimate = last_json(capsys)
    assert main(bpc) == 0
    capsys.readouterr()
    card = ModelCard.load(pipe_dir / "README.md")
    assert [r.metric_config for r in card.data.eval_results] == [
        "one-t estimate of the negative ELBO, 1 of T=12 steps, mean of 3", "negative ELBO, all T=12 steps"]
    assert card.data.eval_results[0].metric_value == pytest.approx(estimate["bpc"], abs=1e-6)
    assert card.data.model_name == "pipe" and card.data.license == "apache-2.0" and "# A model" in card.text

    # --no-update-card leaves the card as it was.
    before = (pipe_dir / "README.md").read_bytes()
    assert main(bpc + ["--max-sequences", "2", "--no-update-card"]) == 0
    assert last_json(capsys)["model_card"] is None and (pipe_dir / "README.md").read_bytes() == before

    # An argmax flow: the IWBO with its number of draws; a folder without a card gets none.
    torch.manual_seed(0)
    flow_dir = tmp_path / "flow"
    ArgmaxFlowModel(ArgmaxFlowConfig(num_classes=27, seq_len=16, flow_type="coupling", hidden_size=8, num_layers=1,
                                     num_flow_steps=1, num_mixtures=2, context_size=4)).save_pretrained(flow_dir)
    CharVocabulary.text8().save_pretrained(flow_dir)
    flow_bpc = ["bpc", "--model", str(flow_dir), "--text-file", str(tmp_path / "held_out.txt"), "--num-samples", "3"]
    assert main(flow_bpc) == 0
    assert last_json(capsys)["model_card"] is None and not (flow_dir / "README.md").exists()
    (flow_dir / "README.md").write_text(card_text)
    assert main(flow_bpc) == 0
    iwbo = last_json(capsys)
    (entry,) = ModelCard.load(flow_dir / "README.md").data.eval_results
    assert entry.metric_config == "IWBO, k=3 draws of q(v|x)" and "IWBO, k=3" in entry.metric_name
    assert entry.metric_value == pytest.approx(iwbo["bpc"], abs=1e-6)

    # A card that does not parse: a warning, and the result is still printed.
    (flow_dir / "README.md").write_text("---\na: [b\n---\n# broken\n")
    assert main(flow_bpc) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["model_card"] is None
    assert "README.md was not updated" in captured.err
