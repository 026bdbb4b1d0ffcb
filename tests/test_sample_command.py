"""`hf-multinomial sample`: text with a prefix or an infill template, maps as a PNG grid, the chain, bad flags."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler
from hf_multinomial.cli import main as cli_main
from hf_multinomial.data import CharVocabulary
from hf_multinomial.models import MultinomialTransformer
from hf_multinomial.models.unet_segmentation import SegmentationUNet


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    torch.manual_seed(0)
    denoiser = MultinomialTransformer(num_classes=27, max_seq_len=24, num_train_timesteps=8, num_layers=1,
                                      hidden_size=16, num_heads=2, num_local_heads=1, local_window=2)
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=27,
                                     num_train_timesteps=8), vocabulary=CharVocabulary.text8())
    folder = tmp_path_factory.mktemp("models") / "text"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def map_model(tmp_path_factory):
    torch.manual_seed(0)
    denoiser = SegmentationUNet(num_classes=4, sample_size=(8, 16), num_train_timesteps=6, base_channels=8,
                                channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=())
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=4,
                                     num_train_timesteps=6))
    folder = tmp_path_factory.mktemp("models") / "maps"
    pipe.save_pretrained(folder)
    return folder


def run(capsys, *argv):
    capsys.readouterr()
    status = cli_main(["sample", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_text_with_a_prefix_is_seeded_and_written(text_model, tmp_path, capsys):
    status, out, _ = run(capsys, "--model", text_model, "--num-samples", 3, "--prefix", "the cat ", "--seed", 5,
                         "--output", tmp_path / "samples.txt", "--num-inference-steps", 4)
    assert status == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["num_inference_steps"] == 4 and len(result["samples"]) == 3
    assert all(s.startswith("the cat ") and len(s) == 24 for s in result["samples"])
    assert (tmp_path / "samples.txt").read_text().splitlines() == result["samples"]
    again = json.loads(run(capsys, "--model", text_model, "--num-samples", 3, "--prefix", "the cat ", "--seed", 5,
                           "--num-inference-steps", 4)[1].strip().splitlines()[-1])
    assert again["samples"] == result["samples"]


def test_infill_keeps_the_template_and_the_chain_is_a_png(text_model, tmp_path, capsys):
    template = "the __ of ___ was"
    status, out, _ = run(capsys, "--model", text_model, "--num-samples", 2, "--infill", template,
                         "--chain", tmp_path / "chain.png", "--num-inference-steps", 8)
    assert status == 0
    result = json.loads(out.strip().splitlines()[-1])
    for sample in result["samples"]:
        assert all(sample[i] == c for i, c in enumerate(template) if c != "_")
    with Image.open(tmp_path / "chain.png") as image:
        assert image.height > 9 * 10  # one row of text per state: the prior and 8 steps


def test_maps_are_a_png_grid_with_their_chain(map_model, tmp_path, capsys):
    status, out, _ = run(capsys, "--model", map_model, "--num-samples", 4, "--output", tmp_path / "maps.png",
                         "--chain", tmp_path / "chain.png", "--num-inference-steps", 3)
    assert status == 0
    assert json.loads(out.strip().splitlines()[-1])["output"].endswith("maps.png")
    grid = np.asarray(Image.open(tmp_path / "maps.png"))
    chain = np.asarray(Image.open(tmp_path / "chain.png"))
    assert grid.ndim == 3 and chain.shape[1] > grid.shape[1]  # four states (prior + 3 steps) per row


@pytest.mark.parametrize("flags, message", [
    (["--prefix", "a"], r"--prefix and --infill need a text model"),
    (["--output", "maps.txt"], r"--output 'maps.txt': maps are written as a PNG grid"),
    (["--chain", "chain.gif"], r"--chain 'chain.gif': the chain is written as a PNG"),
    (["--num-inference-steps", "7"], r"num_inference_steps must be an integer in \[1, 6\], got 7"),
    (["--num-samples", "0"], r"--num-samples: must be a positive integer, got '0'"),
    (["--num-samples", "-2"], r"--num-samples: must be a positive integer, got '-2'"),
    (["--num-inference-steps", "1.5"], r"--num-inference-steps: must be a positive integer, got '1.5'"),
    (["--model", "no-such-folder"], r"--model: no such folder: 'no-such-folder'"),
])
def test_bad_map_flags_are_one_error_line(map_model, tmp_path, capsys, flags, message):
    import re

    status, _, err = run(capsys, "--model", map_model, *flags)
    lines = err.strip().splitlines()
    assert status == 2 and "Traceback" not in err and re.search(message, lines[-1]), err
    assert lines[-1].startswith("hf-multinomial sample: error:")


@pytest.mark.parametrize("flags, message", [
    (["--infill", "a" * 25], r"--infill has 25 characters, more than the model's seq_len=24"),
    (["--infill", "a_b", "--mask-char", "__"], r"--mask-char must be one character, got '__'"),
    (["--infill", "a_b", "--prefix", "a"], r"either --prefix or --infill"),
    (["--infill", "a_B"], r"'B'"),
    (["--temperature", "0"], r"argument --temperature: must be a positive, finite number, got '0'"),
    (["--temperature", "nan"], r"got 'nan'"),
    (["--corrector-steps", "-1"], r"argument --corrector-steps: must be an integer >= 0, got '-1'"),
    (["--corrector-steps", "1.5"], r"got '1.5'"),
    (["--corrector-positions", "0"], r"argument --corrector-positions: must be a positive integer, got '0'"),
    (["--corrector-steps", "1", "--corrector-positions", "25"], r"corrector_positions=25 exceeds the 24 positions"),
    (["--corrector-selection-tau", "0"], r"argument --corrector-selection-tau: must be a positive, finite number"),
    (["--corrector-selection-tau", "inf"], r"got 'inf'"),
])
def test_bad_text_flags_are_one_error_line(text_model, capsys, flags, message):
    import re

    status, _, err = run(capsys, "--model", text_model, *flags)
    assert status == 2 and "Traceback" not in err and re.search(message, err.strip().splitlines()[-1]), err


def test_corrector_and_temperature_flags(text_model, capsys):
    """The flags reach the pipeline: the same seed and flags give the same text, and the corrector changes it."""
    base = ["--model", text_model, "--num-samples", 2, "--num-inference-steps", 4, "--seed", 1]
    status, out, _ = run(capsys, *base, "--corrector-steps", 2, "--temperature", 0.7)
    assert status == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["corrector_steps"], result["corrector_positions"], result["temperature"]) == (2, 1, 0.7)
    pipe = DiscreteDiffusionPipeline.from_pretrained(text_model)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(1), corrector_steps=2,
                    temperature=0.7).samples
    assert result["samples"] == expected
    plain = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(1)).samples
    assert plain != expected


@pytest.mark.parametrize("precision", ["bf16", "int8", "auto"])
def test_precision_flag_samples_text_of_the_right_length(text_model, capsys, precision):
    from hf_multinomial.inference import resolve_precision

    status, out, err = run(capsys, "--model", text_model, "--num-samples", 2, "--num-inference-steps", 3,
                           "--precision", precision)
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["precision"] == resolve_precision(precision, "cpu") and not result["compiled"]
    assert len(result["samples"]) == 2 and all(len(text) == 24 for text in result["samples"])
    assert set("".join(result["samples"])) <= set(CharVocabulary.text8().symbols)


def test_bad_precision_is_one_error_line(text_model, capsys):
    status, _, err = run(capsys, "--model", text_model, "--precision", "fp16")
    assert status == 2 and "argument --precision: invalid choice: 'fp16'" in err and "Traceback" not in err
