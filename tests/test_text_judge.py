# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""scripts/benchmarks/text_judge.py: the character-level GPT-2 judge of generated text."""

import copy
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

from hf_multinomial.data import CharVocabulary

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "benchmarks" / "text_judge.py"


def load_script():
    spec = importlib.util.spec_from_file_location("text_judge", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("text_judge", module)
    spec.loader.exec_module(module)
    return module


tj = load_script()
VOCABULARY = CharVocabulary.text8()
# A tiny judge: context BOS + 16 characters, so a 36-character text is scored with 4 windows (stride 8).
TINY = {"n_positions": 17, "n_embd": 16, "n_layer": 2, "n_head": 2}
# Small enough for a few CPU-seconds of training in the tests.
SMALL = {"n_positions": 65, "n_embd": 32, "n_layer": 1, "n_head": 2}


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    # initializer_range 0.3 instead of GPT-2's 0.02: far-from-uniform conditionals, so a wrong position, a missed
    # BOS or a padding leak changes the score visibly.
    return GPT2LMHeadModel(tj.judge_config(27, initializer_range=0.3, **TINY)).eval()


@pytest.fixture(scope="module")
def splits():
    return tj.bundled_splits()


def brute_force_bits(model, text, stride):
    """-log2 p of every character of `text`, one float64 forward per character, no batching, no padding: character
    i is predicted from BOS + the characters text[start:i], where start is the smallest multiple of `stride` that
    leaves at most `context - 1` characters before i (the sliding-window rule, stated independently of `windows`)."""
    model64 = copy.deepcopy(model).double().eval()
    context, bos = model.config.n_positions - 1, model.config.vocab_size - 1
    ids = VOCABULARY.encode(text)
    bits = []
    with torch.no_grad():
        for i, target in enumerate(ids):
            start = max(0, math.ceil((i - context + 1) / stride) * stride)
            prefix = torch.tensor([[bos] + ids[start:i]])
            logits = model64(input_ids=prefix).logits[0, -1]
            bits.append(-math.log2(torch.softmax(logits, dim=-1)[target].item()))
    return np.array(bits)


def test_windows_score_every_character_once():
    for length in (1, 15, 16, 17, 36, 100):
        for stride in (1, 5, 8, 16):
            spans = tj.windows(length, 16, stride)
            scored = [i for _, end, first in spans for i in range(first, end)]
            assert scored == list(range(length))
            assert all(end - start <= 16 and start % stride == 0 for start, end, _ in spans)
            assert all(first - start >= 16 - stride for start, _, first in spans[1:])
    assert tj.windows(36, 16) == [(0, 16, 0), (8, 24, 16), (16, 32, 24), (24, 36, 32)]
    for stride in (0, 17, 2.0):
        with pytest.raises(ValueError, match="stride"):
            tj.windows(36, 16, stride)


@pytest.mark.parametrize("stride", [None, 5, 16])
def test_score_texts_matches_brute_force(tiny_model, stride):
    texts = ["a", "hello world", "the quick brown", "sixteen chars ok", "a long text of thirty six characters"]
    assert [len(t) for t in texts] == [1, 11, 15, 16, 36]  # the last needs 4 windows of 16 at the default stride 8
    result = tj.score_texts(tiny_model, texts, VOCABULARY, stride=stride, batch_size=2)  # mixed lengths, padded
    reference = [brute_force_bits(tiny_model, t, stride or 8) for t in texts]
    total = sum(r.sum() for r in reference)
    n = sum(len(t) for t in texts)
    # Tolerance from float32 rounding: the batched forward runs in float32 (unit roundoff u = 2**-24 = 6e-8), the
    # reference in float64. Each logit is a chain of O(10) rounded sums of O(n_embd) terms and is of size up to ~4
    # here, so its absolute error is O(10 * 16 * 4 * u) ~ 1e-6 (worst case; typically less, errors partly cancel),
    # and the log-softmax inherits that: at most a few 1e-6 bits per character (measured: 2.3e-6 for the worst
    # character, 2.5e-7 for the worst per-sample mean). 1e-5 bits per character on the means is a safe bound; a
    # scoring bug (wrong position, missed BOS, padding leak, a wrong window start) moves a character's -log2 p by
    # O(1) bits with these weights.
    np.testing.assert_allclose(result["per_sample_bpc"], [r.mean() for r in reference], rtol=0, atol=1e-5)
    assert result["bpc"] == pytest.approx(total / n, abs=1e-5)
    if stride is None:  # the flat-sequence scorer (validation bpc) follows the same rule
        joined = "".join(texts)
        assert tj.ids_bits_per_character(tiny_model, VOCABULARY.encode_array(joined)) == pytest.approx(
            brute_force_bits(tiny_model, joined, 8).mean(), abs=1e-5)
    assert result["bits"] == pytest.approx(total, abs=1e-5 * n)
    assert result["num_characters"] == n and result["num_samples"] == len(texts)
    # The conditionals are far from uniform (log2 28 = 4.81): the comparison is not vacuous.
    assert np.concatenate(reference).std() > 0.3


def test_unigram_entropy_exact(tiny_model):
    assert tj.unigram_entropy(["aaaaaaa", "aaa"]) == 0.0
    assert tj.unigram_entropy(["ab" * 50]) == 1.0
    assert tj.unigram_entropy(["abab", "ba"]) == 1.0  # pooled over samples
    every = "".join(VOCABULARY.symbols) * 3
    assert tj.unigram_entropy([every]) == pytest.approx(math.log2(27), abs=1e-12)
    assert tj.unigram_entropy(["a", "b", "c", "d"]) == pytest.approx(2.0, abs=1e-12)
    result = tj.score_texts(tiny_model, ["the the the", "the"], VOCABULARY)
    # t, h, e 4 times each and 2 spaces out of 14 characters
    p = np.array([4, 4, 4, 2]) / 14
    assert result["unigram_entropy"] == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-12)


def test_train_save_load(tmp_path, splits):
    validation = splits["validation"][:8000]
    model, bpc = tj.train_judge(splits["train"], validation, max_steps=25, max_time_s=None, seed=0, batch_size=8,
                                config=SMALL, log_every=0)
    assert math.isfinite(bpc) and 0 < bpc < math.log2(28)
    assert bpc == pytest.approx(tj.ids_bits_per_character(model, validation), abs=1e-9)
    assert model.judge_training["steps"] == 25 and model.judge_training["validation_characters"] == 8000

    tj.save_judge(model, tmp_path / "judge")
    assert (tmp_path / "judge" / "model.safetensors").is_file()
    loaded = tj.load_judge(tmp_path / "judge")
    texts = ["anarchism originated as a term of abuse", "the first " * 12]
    assert tj.score_texts(loaded, texts, VOCABULARY) == tj.score_texts(model, texts, VOCABULARY)
    assert loaded.judge_training["validation_bpc"] == bpc
    assert tj.load_judge_vocabulary(tmp_path / "judge") == VOCABULARY


def test_bad_inputs(tiny_model):
    with pytest.raises(ValueError, match=r"Sample 1: character 'W' at position 6"):
        tj.score_texts(tiny_model, ["fine text", "hello World"], VOCABULARY)
    with pytest.raises(ValueError, match=r"Sample 0: character 'é' at position 3"):
        tj.score_texts(tiny_model, ["caf\u00e9"], VOCABULARY)
    with pytest.raises(ValueError, match="empty list"):
        tj.score_texts(tiny_model, [], VOCABULARY)
    with pytest.raises(ValueError, match="single string"):
        tj.score_texts(tiny_model, "a string", VOCABULARY)
    with pytest.raises(ValueError, match="Sample 1 is empty"):
        tj.score_texts(tiny_model, ["a", ""], VOCABULARY)
    with pytest.raises(ValueError, match="does not match"):
        tj.score_texts(tiny_model, ["abc"], CharVocabulary(list("abc")))
    for steps in (0, -3):
        with pytest.raises(ValueError, match="max_steps"):
            tj.train_judge([1, 2, 3], [1, 2], max_steps=steps)
    with pytest.raises(ValueError, match="train_ids"):
        tj.train_judge([1, 2, 27], [1, 2], max_steps=1)


def _last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def test_cli_train_and_score(tmp_path, capsys, splits):
    judge = tmp_path / "judge"
    argv = ["train", "--output_dir", str(judge), "--max_steps", "3", "--batch_size", "4", "--seed", "1",
            *sum((["--" + k, str(v)] for k, v in SMALL.items()), [])]
    assert tj.main(argv) == 0
    out = capsys.readouterr().out
    assert "CPU capability:" in out and "Judge validation bpc:" in out
    train_row = _last_json(out)["rows"][0]
    assert train_row["steps"] == 3 and train_row["validation_characters"] == len(splits["validation"])
    assert 0 < train_row["validation_bpc"] < math.log2(28) + 0.5

    lines = ["the cat sat on the mat", "and so on and so forth"]
    samples = tmp_path / "samples.txt"
    samples.write_text("\n".join(lines) + "\n")
    assert tj.main(["score", "--judge", str(judge), "--samples", str(samples)]) == 0
    out = capsys.readouterr().out
    assert "CPU capability:" in out and "judge_bpc" in out
    row = _last_json(out)["rows"][0]
    expected = tj.score_texts(tj.load_judge(judge), lines, VOCABULARY)
    assert row["judge_bpc"] == expected["bpc"] and row["unigram_entropy"] == expected["unigram_entropy"]
    assert row["num_samples"] == 2 and row["judge_validation_bpc"] == train_row["validation_bpc"]


@pytest.mark.parametrize("case", ["missing_file", "empty_file", "blank_line", "bad_character", "zero_steps",
                                  "negative_steps", "not_a_number", "unknown_mode", "no_mode", "missing_judge"])
def test_cli_bad_input(tmp_path, capsys, case):
    samples = tmp_path / "samples.txt"
    judge = tmp_path / "judge"
    tj.save_judge(GPT2LMHeadModel(tj.judge_config(27, **TINY)), judge)
    argv = {
        "missing_file": ["score", "--judge", str(judge), "--samples", str(tmp_path / "nope.txt")],
        "empty_file": ["score", "--judge", str(judge), "--samples", str(samples)],
        "blank_line": ["score", "--judge", str(judge), "--samples", str(samples)],
        "bad_character": ["score", "--judge", str(judge), "--samples", str(samples)],
        "zero_steps": ["train", "--output_dir", str(tmp_path / "out"), "--max_steps", "0"],
        "negative_steps": ["train", "--output_dir", str(tmp_path / "out"), "--max_steps", "-5"],
        "not_a_number": ["train", "--output_dir", str(tmp_path / "out"), "--max_steps", "many"],
        "unknown_mode": ["evaluate", "--judge", str(judge)],
        "no_mode": [],
        "missing_judge": ["score", "--judge", str(tmp_path / "none"), "--samples", str(samples)],
    }[case]
    samples.write_text({"empty_file": "", "blank_line": "one\n\nthree\n", "bad_character": "good\nBad\n"}.get(
        case, "some text\n"))
    capsys.readouterr()  # the setup's output (save_pretrained's progress bar)
    assert tj.main(argv) == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and not (tmp_path / "out").exists()
    expected = {"missing_file": "nope.txt", "empty_file": "empty", "blank_line": "Line 2", "bad_character":
                "Sample 1: character 'B'", "zero_steps": "max_steps", "negative_steps": "max_steps",
                "not_a_number": "max_steps", "unknown_mode": "evaluate", "no_mode": "mode",
                "missing_judge": "No judge"}[case]
    assert expected in err_lines[0]


def test_cli_exit_status_in_a_process(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "score", "--judge", str(tmp_path), "--samples",
                             str(tmp_path / "missing.txt")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.stderr
