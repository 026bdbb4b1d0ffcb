"""Subword tokenizers: BPE training offline, blocks that remember their characters, bits per character for any
tokenizer, and a user's own files and datasets trained end to end."""

import json
import lzma
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_multinomial.cli import main as cli_main
from hf_multinomial.data import CharVocabulary, bundled_text8_path, split_boundaries
from hf_multinomial.data.tokenizers import characters_per_token, tokenize_into_blocks, train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_text_diffusion.py"


@pytest.fixture(scope="module")
def bundled_text():
    with lzma.open(bundled_text8_path(), "rt") as f:
        return f.read()


@pytest.fixture(scope="module")
def training_text_file(bundled_text, tmp_path_factory):
    """The bundled sample's training split (its first 90 %), as a user's text file."""
    start, end = split_boundaries(len(bundled_text))["train"]
    path = tmp_path_factory.mktemp("text") / "train.txt"
    path.write_text(bundled_text[start:end])
    return path


@pytest.fixture(scope="module")
def bpe_dir(training_text_file, tmp_path_factory):
    """`hf-multinomial train-tokenizer` on the training text, vocabulary 4096."""
    out = tmp_path_factory.mktemp("tok") / "bpe-4096"
    assert cli_main(["train-tokenizer", "--files", str(training_text_file), "--vocab-size", "4096",
                     "--output", str(out)]) == 0
    return out


def test_the_bpe_tokenizer_round_trips_offline_and_has_no_special_tokens(bpe_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bpe_dir)
    assert len(tokenizer) == 4096 and tokenizer.all_special_ids == []
    for text in ["the city of london", "  two  spaces, Capitals and ünïcödé €", "\n\ttabs\n", ""]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert all(0 <= i < 4096 for i in ids)
        assert tokenizer.decode(ids) == text  # byte-level: no unknown token, the text comes back
    # Common words are single tokens: the merges were learned from the text.
    assert len(tokenizer(" the", add_special_tokens=False)["input_ids"]) == 1


def test_characters_per_token_by_hand():
    # "the cat" as tokens "the" (0-3) and " cat" (3-7): 3 and 4 characters.
    assert characters_per_token("the cat", [(0, 3), (3, 7)]).tolist() == [3, 4]
    # Two byte tokens of one character "é" (both at 1-2): the first takes it; trailing text goes to the last token.
    assert characters_per_token("aé!", [(0, 1), (1, 2), (1, 2)]).tolist() == [1, 1, 1]
    assert characters_per_token("abc  ", [(0, 3)]).tolist() == [5]
    assert characters_per_token("", []).tolist() == []


def test_blocks_lose_no_token_but_the_remainder_and_their_characters_add_up(bpe_dir, bundled_text):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bpe_dir)
    documents = [bundled_text[i : i + 3001] for i in range(0, 60_000, 3001)] + ["", "é" * 7]
    dataset = Dataset.from_dict({"text": documents, "other": list(range(len(documents)))})
    seq_len = 64
    blocks = tokenize_into_blocks(dataset, tokenizer, seq_len, text_column="text")
    all_ids, all_chars = [], []
    for text in documents:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        all_ids += encoded["input_ids"]
        all_chars += characters_per_token(text, encoded["offset_mapping"]).tolist()
    count = len(all_ids) // seq_len
    assert len(blocks) == count and len(all_ids) - count * seq_len < seq_len
    assert np.array(blocks["input_ids"]).ravel().tolist() == all_ids[: count * seq_len]
    assert sum(all_chars) == sum(map(len, documents))
    remainder_chars = sum(all_chars[count * seq_len:])
    assert sum(blocks["num_characters"]) + remainder_chars == sum(map(len, documents))
    # A character vocabulary: one character per token.
    char_blocks = tokenize_into_blocks(dataset.select(range(3)), CharVocabulary.text8(), 100)
    assert set(char_blocks["num_characters"]) == {100} and len(char_blocks) == 9003 // 100


@pytest.mark.parametrize("column, message", [("body", r"no column 'body'.*\['text', 'other'\]")])
def test_an_unknown_text_column_is_named(bpe_dir, column, message):
    from transformers import AutoTokenizer

    dataset = Dataset.from_dict({"text": ["a b c"], "other": [1]})
    with pytest.raises(ValueError, match=message):
        tokenize_into_blocks(dataset, AutoTokenizer.from_pretrained(bpe_dir), 8, text_column=column)


def test_too_little_text_for_one_block_is_an_error(bpe_dir):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match=r"gives \d+ tokens, fewer than one block of seq_len=512"):
        tokenize_into_blocks(Dataset.from_dict({"text": ["short text"]}), AutoTokenizer.from_pretrained(bpe_dir), 512)
    with pytest.raises(ValueError, match=r"empty: 0 rows"):
        tokenize_into_blocks(Dataset.from_dict({"text": []}), AutoTokenizer.from_pretrained(bpe_dir), 8)


@pytest.mark.parametrize("flags, message", [
    (["--train_file", "data.xml"], r"--train_file 'data.xml': cannot read files of this kind"),
    (["--train_file", "a.jsonl", "--text_file", "b.txt"], r"one source of text"),
    (["--validation_file", "v.csv"], r"--validation_file 'v.csv' needs --train_file"),
    (["--dataset", "text8", "--data_dir", ".", "--tokenizer_name", "tok"], r"--tokenizer_name 'tok' goes with"),
    (["--validation_split_percentage", "0"], r"validation_split_percentage must be between 1 and 99, got 0"),
])
def test_bad_data_flags_are_named(flags, message):
    from hf_multinomial.training import parse_arguments
    from hf_multinomial.training.text_diffusion import TASK

    with pytest.raises(ValueError, match=message):
        parse_arguments(TASK, flags)


def test_a_tokenizer_whose_size_differs_from_the_denoiser_is_refused(bpe_dir):
    from transformers import AutoTokenizer

    from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler
    from hf_multinomial.models import MultinomialTransformer

    denoiser = MultinomialTransformer(num_classes=27, max_seq_len=8, num_train_timesteps=4, num_layers=1,
                                      hidden_size=16, num_heads=2, num_local_heads=1, local_window=2)
    with pytest.raises(ValueError, match=r"4096"):
        DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=27,
                                  num_train_timesteps=4), vocabulary=AutoTokenizer.from_pretrained(bpe_dir))


def test_bpc_of_a_bpe_pipeline_is_nats_over_characters(bpe_dir, tmp_path, capsys):
    """`hf-multinomial bpc` normalises by the characters of the scored text, counted here by hand."""
    from transformers import AutoTokenizer

    from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler
    from hf_multinomial.evaluation import diffusion_negative_elbo
    from hf_multinomial.models import MultinomialTransformer

    tokenizer = AutoTokenizer.from_pretrained(bpe_dir)
    torch.manual_seed(0)
    denoiser = MultinomialTransformer(num_classes=4096, max_seq_len=16, num_train_timesteps=4, num_layers=1,
                                      hidden_size=16, num_heads=2, num_local_heads=1, local_window=2)
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=4096,
                                     num_train_timesteps=4), vocabulary=tokenizer)
    pipe.save_pretrained(tmp_path / "pipe")
    text = "the first city of the world was a small town near the river " * 3
    (tmp_path / "held_out.txt").write_text(text)
    capsys.readouterr()
    assert cli_main(["bpc", "--model", str(tmp_path / "pipe"), "--text-file", str(tmp_path / "held_out.txt"),
                     "--no-update-card"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    count = len(ids) // 16
    # By hand: the characters of the decoded tokens of the scored blocks (byte-level BPE decodes exactly).
    characters = len(tokenizer.decode(ids[: count * 16]))
    nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, torch.tensor(ids[: count * 16]).view(count, 16),
                                  generator=torch.Generator().manual_seed(0))
    assert result["num_characters"] == characters and result["num_tokens"] == count * 16
    assert result["bpc"] == pytest.approx(float(nll.sum()) / math.log(2) / characters, rel=1e-12)


def run_script(*flags, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--preset", "tiny", "--max_train_steps", "6",
                           "--report_to", "none", "--num_card_samples", "1", "--num_validation_sequences", "4",
                           *map(str, flags)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


SAMPLE = ("import sys, torch; from hf_multinomial import DiscreteDiffusionPipeline; "
          "p = DiscreteDiffusionPipeline.from_pretrained(sys.argv[1]); p.set_progress_bar_config(disable=True); "
          "s = [p(batch_size=4, generator=torch.Generator().manual_seed(0)).samples for _ in range(2)]; "
          "assert s[0] == s[1] and len(s[0]) == 4 and all(isinstance(t, str) and t for t in s[0]), s; "
          "print(type(p.vocabulary).__name__, len(p.vocabulary))")


def sample_in_a_new_process(folder):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SAMPLE, str(folder)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


@pytest.mark.slow
def test_a_users_files_and_datasets_train_end_to_end_with_a_bpe_tokenizer(bpe_dir, bundled_text, tmp_path):
    from datasets import DatasetDict

    documents = [bundled_text[i : i + 2000] for i in range(0, 200_000, 2000)]
    (tmp_path / "train.txt").write_text("\n".join(documents[:90]))
    with open(tmp_path / "train.jsonl", "w") as f:
        for doc in documents:
            f.write(json.dumps({"body": doc, "id": len(doc)}) + "\n")
    DatasetDict(train=Dataset.from_dict({"text": documents[:90]}),
                validation=Dataset.from_dict({"text": documents[90:]})).save_to_disk(tmp_path / "saved")

    runs = {
        "txt": ["--train_file", tmp_path / "train.txt"],
        "jsonl": ["--train_file", tmp_path / "train.jsonl", "--text_column", "body",
                  "--validation_split_percentage", "10"],
        "saved": ["--dataset_name", tmp_path / "saved"],
    }
    for name, flags in runs.items():
        out = tmp_path / f"out-{name}"
        results = run_script(*flags, "--tokenizer_name", bpe_dir, "--output_dir", out, "--cache_dir",
                             tmp_path / "cache", cwd=tmp_path)
        assert results["global_step"] == 6 and results["validation_bpc_estimate"] > 0
        _, size = sample_in_a_new_process(out)
        assert size == "4096"


def test_special_tokens_are_never_sampled_and_the_prefix_is_encoded_without_them(bpe_dir):
    from transformers import AutoTokenizer

    from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler
    from hf_multinomial.models import MultinomialTransformer

    tokenizer = AutoTokenizer.from_pretrained(bpe_dir)
    tokenizer.add_special_tokens({"eos_token": "<|endoftext|>", "pad_token": "<|pad|>"})
    special = sorted(tokenizer.all_special_ids)
    assert len(tokenizer) == 4098 and special == [4096, 4097]
    torch.manual_seed(0)
    denoiser = MultinomialTransformer(num_classes=4098, max_seq_len=12, num_train_timesteps=5, num_layers=1,
                                      hidden_size=16, num_heads=2, num_local_heads=1, local_window=2)
    with torch.no_grad():  # a denoiser that all but insists on the special tokens
        denoiser.proj_out.bias[special] = 30.0
    pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=4098,
                                     num_train_timesteps=5), vocabulary=tokenizer)
    pipe.set_progress_bar_config(disable=True)
    ids = pipe(batch_size=8, output_type="pt", generator=torch.Generator().manual_seed(0)).samples
    assert not torch.isin(ids, torch.tensor(special)).any()
    prefix = " the city"
    text = pipe(batch_size=2, prefix=prefix, generator=torch.Generator().manual_seed(0)).samples
    assert all(t.startswith(prefix) for t in text)


@pytest.mark.parametrize("flags, message", [
    (["--vocab-size", "0"], r"argument --vocab-size: must be a positive integer, got '0'"),
    (["--vocab-size", "2.5"], r"argument --vocab-size: must be a positive integer, got '2.5'"),
    (["--vocab-size", "-3"], r"argument --vocab-size: must be a positive integer, got '-3'"),
    (["--vocab-size", "100"], r"vocab_size must be an integer >= 256 \(the byte alphabet\), got 100"),
    (["--vocab-size", "300", "--min-frequency", "0"], r"argument --min-frequency: must be a positive integer"),
    (["--vocab-size", "300", "--files", "missing.txt"], r"argument --files: no such file: 'missing.txt'"),
])
def test_train_tokenizer_bad_flags_are_one_error_line(training_text_file, tmp_path, capsys, flags, message):
    import re

    argv = ["train-tokenizer", "--files", str(training_text_file), "--output", str(tmp_path / "tok"), *flags]
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(message, err.strip().splitlines()[-1]), err
    assert not (tmp_path / "tok").exists()


def test_train_tokenizer_does_not_replace_a_tokenizer(bpe_dir, training_text_file, capsys):
    capsys.readouterr()
    assert cli_main(["train-tokenizer", "--files", str(training_text_file), "--vocab-size", "300",
                     "--output", str(bpe_dir)]) == 2
    assert "already holds a tokenizer" in capsys.readouterr().err


def test_a_missing_train_file_is_named(tmp_path):
    from hf_multinomial.data.arguments import TextDataArguments, load_text_data

    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_text_data(TextDataArguments(train_file=str(tmp_path / "missing.jsonl")))


@pytest.mark.parametrize("total_units", [0, -4, 2.5, True])
def test_total_units_must_be_a_positive_integer(total_units):
    from hf_multinomial.evaluation import bits_per_unit

    with pytest.raises(ValueError, match=rf"total_units must be a positive integer, got {total_units!r}"):
        bits_per_unit(torch.ones(2, dtype=torch.float64), 4, total_units=total_units)


def test_total_units_normalise_the_total_and_name_a_non_finite_example():
    from hf_multinomial.evaluation import bits_per_unit

    result = bits_per_unit(torch.tensor([3.0, 5.0], dtype=torch.float64), 4, total_units=10)
    assert result["bpc"] == pytest.approx(8.0 / 10 / math.log(2), rel=1e-12) and result["num_units"] == 10
    with pytest.raises(ValueError, match=r"not finite: nan at example 1"):
        bits_per_unit(torch.tensor([3.0, float("nan")]), 4, total_units=10)
