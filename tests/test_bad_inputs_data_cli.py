"""Bad input to the data loaders, the `hf-multinomial` command and the training flags: a clear error that names the
problem and the value (or the file), never a silent reinterpretation, and on the command line one `error:` line with
exit status 2 and no traceback."""

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

from hf_multinomial.cli import main
from hf_multinomial.data import CharVocabulary, load_cityscapes, load_text_file, write_synthetic_gtfine
from hf_multinomial.data import cache as cache_module
from hf_multinomial.data.arguments import text_file_sequences
from hf_multinomial.data.text import read_text_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ("the quick brown fox jumps over the lazy dog " * 60).encode()  # 2640 characters
VOCAB = CharVocabulary.text8()


def run_loader(loader, path, tmp_path, seq_len=16):
    if loader == "load_text_file":
        return load_text_file(path, VOCAB, seq_len, cache_dir=tmp_path / "cache")
    return text_file_sequences(str(path), VOCAB, seq_len)


# --------------------------------------------------------------------------- corrupt archives
def _zip_bytes(data=TEXT):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("text", data)
    return buffer.getvalue()


def _flip(data: bytes, start: int, stop: int) -> bytes:
    data = bytearray(data)
    for i in range(start, min(stop, len(data))):
        data[i] ^= 0xFF
    return bytes(data)


CORRUPT = {
    # name: (file name, content, what the message says)
    "zip-truncated": ("text.zip", _zip_bytes()[: len(_zip_bytes()) // 2], "not a complete zip archive"),
    "zip-cut": ("text.zip", _zip_bytes()[:40] + _zip_bytes()[80:], "text.zip"),
    "zip-random": ("text.zip", np.random.default_rng(0).bytes(500), "not a complete zip archive"),
    "zip-empty": ("text.zip", b"", "not a complete zip archive"),
    "zip-corrupt-deflate": ("text.zip", _flip(_zip_bytes(), 40, 80), "cannot be decompressed"),
    "xz-truncated": ("text.txt.xz", lzma.compress(TEXT)[:-30], "truncated"),
    "gz-truncated": ("text.txt.gz", gzip.compress(TEXT)[:-30], "truncated"),
    "bz2-truncated": ("text.txt.bz2", bz2.compress(TEXT)[:-30], "truncated"),
    "xz-random": ("text.txt.xz", np.random.default_rng(1).bytes(300), "not a valid xz file"),
    "gz-random": ("text.txt.gz", np.random.default_rng(2).bytes(300), "not a valid gzip file"),
    "bz2-random": ("text.txt.bz2", np.random.default_rng(3).bytes(300), "not a valid bzip2 file"),
    "gz-corrupt": ("text.txt.gz", _flip(gzip.compress(TEXT), 30, 50), "text.txt.gz"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_archive_names_the_file(case, tmp_path):
    name, content, what = CORRUPT[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match="Cannot read '.*" + name.replace(".", r"\.") + "'") as info:
        read_text_bytes(path)
    assert what in str(info.value)


@pytest.mark.parametrize("loader", ["load_text_file", "text_file_sequences"])
@pytest.mark.parametrize("case", ["zip-truncated", "xz-truncated"])
def test_every_loader_names_a_corrupt_archive(loader, case, tmp_path):
    name, content, _ = CORRUPT[case]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        run_loader(loader, tmp_path / name, tmp_path)


@pytest.mark.parametrize("suffix, compress", [(".bz2", bz2.compress), (".xz", lzma.compress), (".gz", gzip.compress)])
def test_truncated_wikipedia_dump_names_the_file(suffix, compress, tmp_path):
    from hf_multinomial.data import text8_from_wikipedia_xml

    path = tmp_path / f"dump.xml{suffix}"
    path.write_bytes(compress(b'<page><text xml:space="preserve">Hello world</text></page>\n' * 200)[:-20])
    with pytest.raises(ValueError, match=rf"Cannot read '.*dump\.xml\{suffix}': it is truncated or corrupt"):
        text8_from_wikipedia_xml(path)


# --------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("loader", ["load_text_file", "text_file_sequences"])
def test_latin1_file_names_the_file_and_the_byte(loader, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("the caf\u00e9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match=r"latin1\.txt' is not UTF-8 text: byte 7 is b'\\xe9'"):
        run_loader(loader, path, tmp_path)


@pytest.mark.parametrize("loader", ["load_text_file", "text_file_sequences"])
def test_character_outside_the_vocabulary_names_the_file(loader, tmp_path):
    path = tmp_path / "capital.txt"
    path.write_text("hello World " * 100)
    with pytest.raises(ValueError, match=r"capital\.txt'.*'W' at position 6"):
        run_loader(loader, path, tmp_path)


# --------------------------------------------------------------------------- lengths
@pytest.mark.parametrize("seq_len", [0, -1, True, 2.5, "16"])
def test_bad_seq_len(seq_len, tmp_path):
    path = tmp_path / "ok.txt"
    path.write_bytes(TEXT)
    with pytest.raises(ValueError, match=f"seq_len must be a positive integer, got {seq_len!r}"):
        load_text_file(path, VOCAB, seq_len, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("loader", ["load_text_file", "text_file_sequences"])
@pytest.mark.parametrize("length", [0, 15])
def test_file_shorter_than_a_sequence(loader, length, tmp_path):
    path = tmp_path / "short.txt"
    path.write_bytes(TEXT[:length])
    with pytest.raises(ValueError, match=rf"short\.txt' holds {length} characters, fewer than one sequence of "
                                         r"seq_len=16"):
        run_loader(loader, path, tmp_path)


def test_short_file_with_empty_held_out_splits_is_an_error(tmp_path):
    # 300 characters: train 270, validation 15, test 15; with seq_len 16 validation and test would be empty.
    path = tmp_path / "tiny.txt"
    path.write_bytes(TEXT[:300])
    with pytest.raises(ValueError, match=r"tiny\.txt' holds 300 characters: its validation split \(15 characters\) "
                                         r"is shorter than one sequence of seq_len=16.*train 270, validation 15, "
                                         r"test 15.*at least 320"):
        load_text_file(path, VOCAB, 16, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("seq_len", [1, 7, 16])
def test_twenty_sequences_fill_every_split(seq_len, tmp_path):
    path = tmp_path / "exact.txt"
    path.write_bytes(TEXT[: 20 * seq_len])
    data = load_text_file(path, VOCAB, seq_len, cache_dir=tmp_path / "cache")
    assert all(len(data[split]) >= 1 for split in ("train", "validation", "test"))


# --------------------------------------------------------------------------- the cache
def test_edit_keeping_size_and_mtime_is_not_served_from_the_cache(tmp_path):
    path = tmp_path / "edited.txt"
    path.write_bytes(TEXT)
    stat = os.stat(path)
    first = load_text_file(path, VOCAB, 16, cache_dir=tmp_path / "cache")
    path.write_bytes(TEXT.replace(b"fox", b"cat"))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same modification time
    assert os.stat(path).st_size == stat.st_size and os.stat(path).st_mtime_ns == stat.st_mtime_ns
    second = load_text_file(path, VOCAB, 16, cache_dir=tmp_path / "cache")
    decoded = "".join(VOCAB.decode(row) for row in second["train"]["input_ids"])
    assert "cat" in decoded and "fox" not in decoded
    assert first["train"]["input_ids"] != second["train"]["input_ids"]


def _stored_png(path, value):
    """An uncompressed 16 x 32 PNG of the label id `value`: its size does not depend on its content."""
    from PIL import Image

    Image.fromarray(np.full((16, 32), value, dtype=np.uint8), mode="L").save(path, format="PNG", compress_level=0)


def test_cityscapes_edit_keeping_size_and_mtime_is_not_served_from_the_cache(tmp_path):
    root = tmp_path / "cityscapes"
    write_synthetic_gtfine(root, num_train=2, num_val=1, height=16, width=32)
    (path,) = list((root / "gtFine" / "val").rglob("*_labelIds.png"))
    _stored_png(path, 7)  # road: category flat (1)
    stat = os.stat(path)
    first = load_cityscapes(root, size=(8, 16), cache_dir=tmp_path / "cache", num_train=1, source_size=None)
    assert np.all(np.asarray(first["test"][0]["input_ids"]) == 1)
    _stored_png(path, 23)  # sky: category 5
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size and os.stat(path).st_mtime_ns == stat.st_mtime_ns
    second = load_cityscapes(root, size=(8, 16), cache_dir=tmp_path / "cache", num_train=1, source_size=None)
    assert np.all(np.asarray(second["test"][0]["input_ids"]) == 5)


def test_stale_tmp_folders_are_removed_on_the_next_write_and_fresh_ones_kept(tmp_path):
    cache = tmp_path / "cache"
    stale = cache / ".tmp-interrupted"
    (stale / "train").mkdir(parents=True)
    (stale / "train" / "data-00000-of-00001.arrow").write_bytes(b"half")
    old = time.time() - cache_module.STALE_TMP_AGE_S - 60
    for p in (stale / "train" / "data-00000-of-00001.arrow", stale / "train", stale):
        os.utime(p, (old, old))
    busy = cache / ".tmp-concurrent-writer"  # old folder, but a file was just written in it
    (busy / "train").mkdir(parents=True)
    os.utime(busy, (old, old))
    (busy / "train" / "data.arrow").write_bytes(b"being written")
    (cache / "not-a-tmp").mkdir()
    os.utime(cache / "not-a-tmp", (old, old))

    path = tmp_path / "t.txt"
    path.write_bytes(TEXT)
    load_text_file(path, VOCAB, 16, cache_dir=cache)
    names = sorted(os.listdir(cache))
    assert ".tmp-interrupted" not in names
    assert ".tmp-concurrent-writer" in names and "not-a-tmp" in names
    assert not [n for n in names if n.startswith(".tmp-") and n != ".tmp-concurrent-writer"]


# --------------------------------------------------------------------------- Cityscapes
@pytest.fixture(scope="module")
def small_gtfine_zip(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtfine_zip")
    return write_synthetic_gtfine(root, num_train=2, num_val=1, archive=True, height=16, width=32)


def _rewrite_zip(source, target, damage):
    with zipfile.ZipFile(source) as archive:
        items = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    victim = sorted(name for name, _ in items if "/train/" in name)[0]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            archive.writestr(name, damage(data) if name == victim else data)
    return victim


@pytest.mark.parametrize("damage, what", [
    (lambda data: data[: len(data) // 2], "truncated"),
    (lambda data: np.random.default_rng(0).bytes(len(data)), "cannot identify image file"),
    (lambda data: b"", "cannot identify image file"),
])
def test_corrupt_png_in_the_zip_names_the_member(damage, what, small_gtfine_zip, tmp_path):
    target = tmp_path / "gtFine_trainvaltest.zip"
    victim = _rewrite_zip(small_gtfine_zip, target, damage)
    with pytest.raises(ValueError, match=f"Cannot read the label map '{victim}' in '.*gtFine_trainvaltest.zip'") as info:
        load_cityscapes(target, size=(8, 16), cache_dir=tmp_path / "cache", num_train=1, source_size=None)
    assert what in str(info.value)


def test_corrupt_png_in_a_folder_names_the_file(tmp_path):
    root = tmp_path / "cityscapes"
    gtfine = write_synthetic_gtfine(root, num_train=2, num_val=1, height=16, width=32)
    victim = sorted((root / "gtFine" / "val").rglob("*_labelIds.png"))[0]
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.raises(ValueError, match=f"Cannot read the label map '{victim}'"):
        load_cityscapes(gtfine, size=(8, 16), cache_dir=tmp_path / "cache", num_train=1, source_size=None)


@pytest.mark.parametrize("cut", ["half", "random"])
def test_truncated_cityscapes_zip_names_the_file(cut, small_gtfine_zip, tmp_path):
    data = open(small_gtfine_zip, "rb").read()
    target = tmp_path / "gtFine_trainvaltest.zip"
    target.write_bytes(data[: len(data) // 2] if cut == "half" else np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match=r"gtFine_trainvaltest\.zip' is not a zip archive"):
        load_cityscapes(target, cache_dir=tmp_path / "cache")


def test_missing_cityscapes_folders_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        load_cityscapes(tmp_path / "no_such_root", cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"Neither a gtFine/ folder nor gtFine_trainvaltest\.zip found in '.*empty'"):
        load_cityscapes(tmp_path / "empty", cache_dir=tmp_path / "cache")
    root = tmp_path / "no_val"
    write_synthetic_gtfine(root, num_train=2, num_val=1, height=16, width=32)
    shutil.rmtree(root / "gtFine" / "val")
    with pytest.raises(FileNotFoundError, match=r"No gtFine/val/<city>/\*_gtFine_labelIds\.png found in '.*no_val"):
        load_cityscapes(root, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- the command line
def cli_error(capsys, argv, *needles):
    """Run `main(argv)`: status 2, one stderr line `hf-multinomial <command>: error: ...` holding every needle, and no
    traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hf-multinomial {argv[0]}: error: "), lines[0]
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def text_pipeline_dir(tmp_path_factory):
    from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler, MultinomialTransformer

    path = tmp_path_factory.mktemp("text_pipe")
    torch.manual_seed(0)
    denoiser = MultinomialTransformer(num_classes=27, max_seq_len=16, hidden_size=16, num_layers=1, num_heads=2,
                                      num_local_heads=1, local_window=4, num_train_timesteps=4)
    DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=MultinomialScheduler(num_classes=27, num_train_timesteps=4),
                              vocabulary=CharVocabulary.text8()).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def map_pipeline_dir(tmp_path_factory):
    from hf_multinomial import DiscreteDiffusionPipeline, MultinomialScheduler, SegmentationUNet

    path = tmp_path_factory.mktemp("map_pipe")
    torch.manual_seed(0)
    unet = SegmentationUNet(num_classes=8, sample_size=(8, 16), base_channels=8, channel_multipliers=(1, 2),
                            num_res_blocks=1, attention_resolutions=(2,), dropout=0.0, num_groups=4,
                            num_train_timesteps=4)
    DiscreteDiffusionPipeline(denoiser=unet, scheduler=MultinomialScheduler(num_classes=8, num_train_timesteps=4)
                              ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def text_flow_dir(tmp_path_factory):
    from hf_multinomial.flows import ArgmaxFlowConfig, ArgmaxFlowModel

    path = tmp_path_factory.mktemp("text_flow")
    torch.manual_seed(0)
    ArgmaxFlowModel(ArgmaxFlowConfig(seq_len=16, flow_type="coupling", hidden_size=8, num_layers=1,
                                     num_flow_steps=1, num_mixtures=2, context_size=4)).save_pretrained(path)
    CharVocabulary.text8().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def map_flow_dir(tmp_path_factory):
    from hf_multinomial.flows import SegmentationFlowConfig, SegmentationFlowModel

    path = tmp_path_factory.mktemp("map_flow")
    torch.manual_seed(0)
    SegmentationFlowModel(SegmentationFlowConfig(num_classes=8, height=4, width=8, num_levels=1, num_steps=1,
                                                 encoder_steps=1, context_channels=2, latent_channels=2,
                                                 mid_channels=4, depth=1, growth=4)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "held_out.txt"
    path.write_bytes(TEXT[:3000])
    return path


FLAG_CASES = {
    # name: (argv after the command, needles of the error line)
    "bpc-max-sequences-0": (["bpc", "--max-sequences", "0"], ["argument --max-sequences", "'0'"]),
    "bpc-max-sequences-negative": (["bpc", "--max-sequences", "-1"], ["argument --max-sequences", "'-1'"]),
    "bpc-max-sequences-text": (["bpc", "--max-sequences", "all"], ["argument --max-sequences", "'all'"]),
    "bpc-seq-len-0": (["bpc", "--seq-len", "0"], ["argument --seq-len", "'0'"]),
    "bpc-batch-size-0": (["bpc", "--batch-size", "0"], ["argument --batch-size", "'0'"]),
    "bpc-repetitions-0": (["bpc", "--estimate", "--repetitions", "0"], ["argument --repetitions", "'0'"]),
    "bpc-num-samples-0": (["bpc", "--num-samples", "0"], ["argument --num-samples", "'0'"]),
    "bpp-max-maps-0": (["bpp", "--max-maps", "0"], ["argument --max-maps", "'0'"]),
    "bpp-max-maps-negative": (["bpp", "--max-maps", "-1"], ["argument --max-maps", "'-1'"]),
    "bpp-batch-size-negative": (["bpp", "--batch-size", "-4"], ["argument --batch-size", "'-4'"]),
    "bpp-missing-data-root": (["bpp", "--data-root", "{tmp}/no_such_cityscapes"],
                              ["argument --data-root", "no_such_cityscapes"]),
    "demo-time-budget-0": (["demo", "--time-budget-s", "0"], ["argument --time-budget-s", "'0'"]),
    "demo-time-budget-negative": (["demo", "--time-budget-s", "-5"], ["argument --time-budget-s", "'-5'"]),
    "demo-time-budget-nan": (["demo", "--time-budget-s", "nan"], ["argument --time-budget-s", "'nan'"]),
    "export-missing-folder": (["export", "{tmp}/no_such_pipeline"], ["argument model_dir", "no_such_pipeline"]),
}


@pytest.mark.parametrize("case", sorted(FLAG_CASES))
def test_bad_flag_values(case, text_pipeline_dir, text_file, tmp_path, capsys):
    argv, needles = FLAG_CASES[case]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] in ("bpc", "bpp"):
        argv += ["--model", str(text_pipeline_dir)]
    if argv[0] == "bpc":
        argv += ["--text-file", str(text_file)]
    cli_error(capsys, argv, *[n.replace("{tmp}", str(tmp_path)) for n in needles])


def test_missing_model_folder_and_text_file(text_pipeline_dir, text_file, tmp_path, capsys):
    cli_error(capsys, ["bpc", "--model", str(tmp_path / "no_model"), "--text-file", str(text_file)],
              "argument --model", "no_model")
    cli_error(capsys, ["bpp", "--model", str(tmp_path / "no_model")], "argument --model", "no_model")
    cli_error(capsys, ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(tmp_path / "no_text.txt")],
              "argument --text-file", "no_text.txt")


def test_bpc_on_a_segmentation_model(map_pipeline_dir, text_file, capsys):
    cli_error(capsys, ["bpc", "--model", str(map_pipeline_dir), "--text-file", str(text_file)],
              str(map_pipeline_dir), "SegmentationUNet", "segmentation maps of 8 x 16", "bpp")


def test_bpc_on_a_segmentation_flow_and_bpp_on_it(map_flow_dir, text_file, capsys):
    import json

    cli_error(capsys, ["bpc", "--model", str(map_flow_dir), "--text-file", str(text_file)],
              str(map_flow_dir), "SegmentationFlowModel", "segmentation maps of 4 x 8", "bpp")
    assert main(["bpp", "--model", str(map_flow_dir), "--max-maps", "2", "--no-update-card"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["num_examples"] == 2 and result["num_pixels"] == 2 * 4 * 8


def test_bpp_on_a_text_pipeline_and_a_text_flow(text_pipeline_dir, text_flow_dir, capsys):
    cli_error(capsys, ["bpp", "--model", str(text_pipeline_dir)],
              str(text_pipeline_dir), "MultinomialTransformer", "text", "bpc")
    cli_error(capsys, ["bpp", "--model", str(text_flow_dir)], str(text_flow_dir), "ArgmaxFlowModel", "text", "bpc")


def test_truncated_weights(text_pipeline_dir, text_file, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(text_pipeline_dir, broken)
    (weights,) = list((broken / "denoiser").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    cli_error(capsys, ["bpc", "--model", str(broken), "--text-file", str(text_file)],
              f"cannot load the model in --model '{broken}'")


@pytest.mark.parametrize("extra, needles", [
    (["--num-samples", "2"], ["--num-samples 2", "diffusion pipeline"]),
    (["--repetitions", "3"], ["--repetitions 3 needs --estimate"]),
    (["--seq-len", "32"], ["--seq-len 32 exceeds the max_seq_len=16"]),
])
def test_flags_that_do_not_apply_to_a_pipeline(extra, needles, text_pipeline_dir, text_file, capsys):
    cli_error(capsys, ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(text_file), *extra], *needles)


@pytest.mark.parametrize("extra, needles", [
    (["--estimate"], ["--estimate is for diffusion pipelines"]),
    (["--repetitions", "2"], ["--repetitions 2 is for diffusion pipelines"]),
])
def test_flags_that_do_not_apply_to_a_flow(extra, needles, text_flow_dir, text_file, capsys):
    cli_error(capsys, ["bpc", "--model", str(text_flow_dir), "--text-file", str(text_file), *extra], *needles)


def test_bpc_text_file_problems_name_the_file(text_pipeline_dir, tmp_path, capsys):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 ".encode("latin-1") * 20)
    cli_error(capsys, ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(latin1)],
              "latin1.txt", "not UTF-8", "byte 3")
    short = tmp_path / "short.txt"
    short.write_text("abc")
    cli_error(capsys, ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(short)],
              "short.txt", "holds 3 characters", "seq_len=16")
    broken = tmp_path / "broken.txt.xz"
    broken.write_bytes(lzma.compress(TEXT)[:50])
    cli_error(capsys, ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(broken)],
              "broken.txt.xz", "truncated")


def test_max_sequences_takes_exactly_that_many(text_pipeline_dir, text_file, capsys):
    import json

    assert main(["bpc", "--model", str(text_pipeline_dir), "--text-file", str(text_file), "--max-sequences", "3",
                 "--no-update-card"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_examples"] == 3


def test_export_of_a_folder_that_is_not_a_pipeline(text_flow_dir, capsys):
    cli_error(capsys, ["export", str(text_flow_dir)], str(text_flow_dir), "model_index.json")


def test_unexpected_exceptions_are_one_line_with_their_type(text_pipeline_dir, text_file, capsys, monkeypatch):
    from hf_multinomial import cli

    def boom(*args, **kwargs):
        raise RuntimeError("something\n  unexpected")

    monkeypatch.setattr(cli, "_evaluate", boom)
    line = cli_error(capsys, ["bpc", "--model", str(text_pipeline_dir), "--text-file", str(text_file)])
    assert line == "hf-multinomial bpc: error: RuntimeError: something unexpected"


@pytest.mark.parametrize("argv, needles", [
    (["bpc", "--model", "{pipe}", "--text-file", "{text}", "--batch-size", "0"], ["argument --batch-size", "'0'"]),
    (["bpp", "--model", "{pipe}"], ["{pipe}", "MultinomialTransformer"]),
])
def test_command_line_as_a_process(argv, needles, text_pipeline_dir, text_file):
    fill = {"{pipe}": str(text_pipeline_dir), "{text}": str(text_file)}
    argv = [fill.get(a, a) for a in argv]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "hf_multinomial.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith(f"hf-multinomial {argv[0]}: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert fill.get(needle, needle) in lines[0]


# --------------------------------------------------------------------------- training flags
TRAINING_CASES = [
    ("text", "--max_train_steps", "0", "max_train_steps", "0"),
    ("text", "--max_train_steps", "-5", "max_train_steps", "-5"),
    ("text", "--checkpointing_steps", "-1", "checkpointing_steps", "-1"),
    ("text", "--train_batch_size", "0", "train_batch_size", "0"),
    ("text", "--gradient_accumulation_steps", "0", "gradient_accumulation_steps", "0"),
    ("text", "--learning_rate", "0", "learning_rate", "0.0"),
    ("text", "--learning_rate", "nan", "learning_rate", "nan"),
    ("text", "--lr_warmup_steps", "-1", "lr_warmup_steps", "-1"),
    ("text", "--num_train_epochs", "0", "num_train_epochs", "0"),
    ("text", "--max_train_time_s", "-1", "max_train_time_s", "-1.0"),
    ("text", "--checkpoints_total_limit", "0", "checkpoints_total_limit", "0"),
    ("text", "--seq_len", "0", "seq_len", "0"),
    ("segmentation", "--height", "0", "height", "0"),
    ("segmentation", "--width", "-8", "width", "-8"),
]


@pytest.mark.parametrize("task, flag, value, name, shown", TRAINING_CASES)
def test_training_flags_are_rejected(task, flag, value, name, shown, tmp_path):
    from hf_multinomial.training import segmentation_diffusion, text_diffusion
    from hf_multinomial.training.run import parse_arguments

    TASK = {"text": text_diffusion.TASK, "segmentation": segmentation_diffusion.TASK}[task]
    with pytest.raises(ValueError, match=rf"{name} must be .*, got {shown}"):
        parse_arguments(TASK, [flag, value, "--output_dir", str(tmp_path / "out")])


def test_training_script_rejects_zero_steps(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_text_diffusion.py"),
                           "--max_train_steps", "0", "--output_dir", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "train_text_diffusion.py: error: max_train_steps must be a positive integer, got 0"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
