"""Tests for hf_multinomial.data: vocabularies, the text8 filter and the text loaders."""

import bz2
import fnmatch
import io
import json
import lzma
import os
import random
import string
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_multinomial.data import (
    CharVocabulary,
    bundled_text8_path,
    load_bundled_text8,
    load_enwik8,
    load_text8,
    load_text_file,
    text8_from_wikipedia_xml,
)
from hf_multinomial.data import text as text_module
from hf_multinomial.data.text import split_boundaries


TEXT8_SYMBOLS = set(" " + string.ascii_lowercase)


def page(body, title="Some title"):
    """A minimal MediaWiki export page with `body` as the article's wiki text (already XML-escaped)."""
    return (
        "  <page>\n"
        f"    <title>{title}</title>\n"
        "    <ns>0</ns>\n"
        "    <revision>\n"
        "      <timestamp>2006-03-03T15:00:00Z</timestamp>\n"
        f'      <text xml:space="preserve">{body}</text>\n'
        "    </revision>\n"
        "  </page>\n"
    )


def dump(*pages):
    return '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.3/">\n' + "".join(pages) + "</mediawiki>\n"


def random_text8(n, seed=0):
    rng = random.Random(seed)
    return "".join(rng.choice(" " + string.ascii_lowercase) for _ in range(n))


# ----------------------------------------------------------------------------- filter
class TestText8Filter:
    def test_digits_are_spelled_and_case_lowered(self):
        out = text8_from_wikipedia_xml(dump(page("In 1984, 7 Cats!")))
        assert out == " in one nine eight four seven cats"

    def test_only_text_element_is_kept(self):
        out = text8_from_wikipedia_xml(dump(page("Body words", title="Title Words")))
        assert out == " body words"
        assert "title" not in out and "timestamp" not in out

    def test_redirect_pages_are_skipped(self):
        xml = dump(page("#REDIRECT [[Computer accessibility]]"), page("Real article"), page("#redirect [[Elsewhere]]"))
        assert text8_from_wikipedia_xml(xml) == " real article"

    def test_links_keep_anchor_text(self):
        out = text8_from_wikipedia_xml(dump(page("See [[Political philosophy|politics]] and [[Anarchy]].")))
        assert out == " see politics and anarchy"

    def test_markup_templates_tables_and_refs_removed(self):
        body = (
            "{{Infobox person|name=Someone|born=1900}}"
            "'''Bold''' text&lt;ref&gt;A citation 2001&lt;/ref&gt; here.\n"
            '{| class="wikitable"\n|-\n| cell one || cell two\n|}\n'
            "&lt;b&gt;tagged&lt;/b&gt; [[de:Anarchismus]] end"
        )
        out = text8_from_wikipedia_xml(dump(page(body)))
        assert out == " bold text here tagged end"

    def test_images_categories_and_urls(self):
        body = (
            "[[Image:Flag.png|thumb|left|200px|A red flag]] "
            "[[image:Map.png|right|A [[world]] map]] "
            "[http://example.com/page Example site] "
            "[[Category:Political ideologies]]"
        )
        out = text8_from_wikipedia_xml(dump(page(body)))
        assert out == " a red flag a world map example site political ideologies"

    def test_entities(self):
        out = text8_from_wikipedia_xml(dump(page("Fish &amp;amp; chips&amp;nbsp;now")))
        assert out == " fish chips now"

    def test_output_alphabet_and_single_spaces(self):
        body = "Ünïcode — MIXED   case\t\ttabs; punctuation?! 42 [[a|b]] x_y-z"
        out = text8_from_wikipedia_xml(dump(page(body), page("Second  PAGE 0")))
        assert set(out) <= TEXT8_SYMBOLS
        assert "  " not in out
        assert out == out.lower()
        assert out.endswith("second page zero")
        assert " four two " in out

    def test_sources_agree(self, tmp_path):
        xml = dump(page("Alpha [[beta|Beta]] 3"), page("#REDIRECT [[X]]"), page("Gamma"))
        expected = text8_from_wikipedia_xml(xml)
        (tmp_path / "d.xml").write_text(xml, encoding="utf-8")
        (tmp_path / "d.xml.bz2").write_bytes(bz2.compress(xml.encode()))
        assert expected == " alpha beta three gamma"
        assert text8_from_wikipedia_xml(tmp_path / "d.xml") == expected
        assert text8_from_wikipedia_xml(str(tmp_path / "d.xml.bz2")) == expected
        assert text8_from_wikipedia_xml(io.BytesIO(xml.encode())) == expected
        assert text8_from_wikipedia_xml(io.StringIO(xml)) == expected
        with open(tmp_path / "d.xml", "rb") as f:
            assert text8_from_wikipedia_xml(f) == expected

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.xml"):
            text8_from_wikipedia_xml(str(tmp_path / "nope.xml"))


# ------------------------------------------------------------------------- vocabulary
class TestCharVocabulary:
    def test_text8_symbols(self):
        vocab = CharVocabulary.text8()
        assert len(vocab) == 27 == vocab.num_classes
        assert vocab.symbols == sorted(TEXT8_SYMBOLS)
        text = "hello world z"
        assert vocab.encode(text) == [0 if c == " " else ord(c) - ord("a") + 1 for c in text]

    def test_decode_accepts_list_numpy_torch_and_batches(self):
        vocab = CharVocabulary.text8()
        ids = vocab.encode("the cat")
        assert vocab.decode(ids) == "the cat"
        assert vocab.decode(np.array(ids, dtype=np.int32)) == "the cat"
        assert vocab.decode(torch.tensor(ids)) == "the cat"
        batch = torch.tensor([vocab.encode("ab c"), vocab.encode("zz y")])
        assert vocab.decode(batch) == ["ab c", "zz y"]
        with pytest.raises(ValueError, match="27"):
            vocab.decode([27])

    def test_unknown_character_names_char_and_position(self):
        vocab = CharVocabulary.text8()
        with pytest.raises(ValueError) as info:
            vocab.encode("abc?def")
        assert "'?'" in str(info.value) and "position 3" in str(info.value)
        with pytest.raises(ValueError) as info:
            vocab.encode("ab\u00e9")
        assert repr("\u00e9") in str(info.value) and "position 2" in str(info.value)

    def test_custom_symbols_non_ascii(self):
        vocab = CharVocabulary(["ä", "b", " ", "€"])
        assert vocab.encode("b ä€") == [1, 2, 0, 3]
        assert vocab.decode([3, 0]) == "€ä"
        with pytest.raises(ValueError, match="twice"):
            CharVocabulary(["a", "a"])
        with pytest.raises(ValueError, match="single character"):
            CharVocabulary(["ab"])

    def test_save_and_load(self, tmp_path):
        vocab = CharVocabulary(list("xyz "))
        files = vocab.save_pretrained(tmp_path / "pipe")
        path = next(f for f in files if os.path.basename(f) == "vocabulary.json")
        assert (tmp_path / "pipe" / "tokenizer_config.json").exists()
        assert json.loads(Path(path).read_text())["symbols"] == list("xyz ")
        assert CharVocabulary.from_pretrained(tmp_path / "pipe") == vocab
        assert CharVocabulary.from_pretrained(path) == vocab
        assert CharVocabulary.from_pretrained(tmp_path, subfolder="pipe") == vocab
        assert CharVocabulary.from_pretrained(path) != CharVocabulary.text8()

    def test_is_a_transformers_tokenizer(self):
        vocab = CharVocabulary.text8()
        assert vocab("ab c")["input_ids"] == [1, 2, 0, 3]
        assert vocab.tokenize("a b") == ["a", " ", "b"]
        assert vocab.batch_decode([[1, 0, 2], [26]]) == ["a b", "z"]
        assert vocab.decode(vocab.encode("  two  spaces ")) == "  two  spaces "
        with pytest.raises(ValueError, match="'!' at position 1"):
            vocab("a!")

    def test_missing_and_corrupt_files(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="vocabulary.json"):
            CharVocabulary.from_pretrained(tmp_path)
        bad = tmp_path / "vocabulary.json"
        bad.write_text("{not json")
        with pytest.raises(ValueError, match=str(bad).replace("\\", "\\\\")):
            CharVocabulary.from_pretrained(tmp_path)
        bad.write_text(json.dumps({"symbols": ["a", "a"]}))
        with pytest.raises(ValueError, match="twice"):
            CharVocabulary.from_pretrained(bad)

    def test_byte_vocabulary(self, tmp_path):
        vocab = CharVocabulary.bytes()
        assert len(vocab) == 256
        raw = bytes(range(256))
        assert vocab.encode(raw) == list(range(256))
        assert vocab.decode_bytes(vocab.encode(raw)) == raw
        text = "naïve café <xml> &amp; 日本"
        ids = vocab.encode(text)
        assert ids == list(text.encode("utf-8"))
        assert vocab.decode(ids) == text
        assert vocab.decode(torch.tensor([ids, ids])) == [text, text]
        assert vocab.decode([0xC3]) == "\ufffd"  # invalid UTF-8 is replaced, not an error
        vocab.save_pretrained(tmp_path)
        loaded = CharVocabulary.from_pretrained(tmp_path)
        assert loaded == vocab and loaded.byte_level
        assert loaded != CharVocabulary([chr(i) for i in range(256)])


# ---------------------------------------------------------------------------- loaders
def expected_rows(n, seq_len):
    """Rows per split computed from the 90/5/5 fractions, independently of split_boundaries."""
    train_end = int(Fraction(9, 10) * n)
    validation_end = int(Fraction(95, 100) * n)
    return {
        "train": (0, train_end, train_end // seq_len),
        "validation": (train_end, validation_end, (validation_end - train_end) // seq_len),
        "test": (validation_end, n, (n - validation_end) // seq_len),
    }


def test_split_boundaries_paper_split():
    assert split_boundaries(100_000_000) == {
        "train": (0, 90_000_000),
        "validation": (90_000_000, 95_000_000),
        "test": (95_000_000, 100_000_000),
    }


@pytest.mark.parametrize("n", [0, 1, 19, 20, 10_007, 3_085_829, 99_999_999])
def test_split_boundaries_cover_text(n):
    bounds = split_boundaries(n)
    assert bounds["train"][0] == 0 and bounds["test"][1] == n
    assert bounds["train"][1] == bounds["validation"][0] and bounds["validation"][1] == bounds["test"][0]
    assert {k: (s, e) for k, (s, e, _) in expected_rows(n, 1).items()} == bounds


def test_small_file_split_and_content(tmp_path):
    text = random_text8(10_007)
    path = tmp_path / "text8"
    path.write_text(text)
    ds = load_text8(path, seq_len=100, cache_dir=tmp_path / "cache")
    assert list(ds) == ["train", "validation", "test"]
    vocab = CharVocabulary.text8()
    for split, (start, end, rows) in expected_rows(len(text), 100).items():
        assert ds[split].num_rows == rows
        joined = "".join(vocab.decode(row) for row in ds[split]["input_ids"])
        assert joined == text[start : start + rows * 100]
    assert (ds["train"].num_rows, ds["validation"].num_rows, ds["test"].num_rows) == (90, 5, 5)

    torch_ds = ds["train"].with_format("torch")
    x = torch_ds[0]["input_ids"]
    assert x.dtype == torch.int64 and x.shape == (100,)
    assert torch_ds[:4]["input_ids"].shape == (4, 100)


def test_zip_plain_folder_and_xz_agree(tmp_path):
    text = random_text8(5_000, seed=1)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / "text8").write_text(text)
    zip_dir = tmp_path / "zipped"
    zip_dir.mkdir()
    with zipfile.ZipFile(zip_dir / "text8.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("text8", text)
    (tmp_path / "sample.txt.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "sample.txt.bz2").write_bytes(bz2.compress(text.encode()))

    cache = tmp_path / "cache"
    reference = load_text8(plain_dir / "text8", seq_len=64, cache_dir=cache)
    others = [
        load_text8(plain_dir, seq_len=64, cache_dir=cache),
        load_text8(zip_dir / "text8.zip", seq_len=64, cache_dir=cache),
        load_text8(zip_dir, seq_len=64, cache_dir=cache),
        load_text8(tmp_path / "sample.txt.xz", seq_len=64, cache_dir=cache),
        load_text_file(tmp_path / "sample.txt.bz2", CharVocabulary.text8(), 64, cache_dir=cache),
    ]
    for other in others:
        for split in ("train", "validation", "test"):
            assert other[split]["input_ids"] == reference[split]["input_ids"]


def test_second_call_uses_cache(tmp_path, monkeypatch):
    path = tmp_path / "text8"
    path.write_text(random_text8(3_000, seed=2))
    first = load_text8(path, seq_len=50, cache_dir=tmp_path / "cache")

    def fail(*args, **kwargs):
        raise AssertionError("the dataset was rebuilt instead of read from the cache")

    monkeypatch.setattr(text_module, "_build_splits", fail)
    second = load_text8(path, seq_len=50, cache_dir=tmp_path / "cache")
    assert second["train"]["input_ids"] == first["train"]["input_ids"]
    with pytest.raises(AssertionError):  # another seq_len is another dataset
        load_text8(path, seq_len=60, cache_dir=tmp_path / "cache")


def test_missing_inputs_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_text8"):
        load_text8(tmp_path / "no_such_text8", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="text8"):
        load_text8(tmp_path, cache_dir=tmp_path / "cache")  # folder without text8
    with pytest.raises(FileNotFoundError, match="enwik8"):
        load_enwik8(tmp_path, cache_dir=tmp_path / "cache")


def test_bad_character_in_file(tmp_path):
    text = random_text8(1_234, seed=3)
    bad = text[:1_000] + "Q" + text[1_001:]
    path = tmp_path / "text8"
    path.write_text(bad)
    with pytest.raises(ValueError) as info:
        load_text8(path, seq_len=10, cache_dir=tmp_path / "cache")
    assert "'Q'" in str(info.value) and "1000" in str(info.value)


def test_enwik8_bytes(tmp_path):
    rng = np.random.default_rng(4)
    data = rng.integers(0, 256, size=7_001, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik8", data)
    (tmp_path / "enwik8").write_bytes(data)
    from_zip = load_enwik8(tmp_path / "enwik8.zip", seq_len=32, cache_dir=tmp_path / "cache")
    from_dir = load_enwik8(tmp_path, seq_len=32, cache_dir=tmp_path / "cache")
    vocab = CharVocabulary.bytes()
    for split, (start, end, rows) in expected_rows(len(data), 32).items():
        assert from_zip[split].num_rows == rows
        ids = np.asarray(from_zip[split]["input_ids"], dtype=np.int64).reshape(-1)
        assert vocab.decode_bytes(ids) == data[start : start + rows * 32]
        assert from_dir[split]["input_ids"] == from_zip[split]["input_ids"]
    x = from_zip["test"].with_format("torch")[0]["input_ids"]
    assert x.dtype == torch.int64 and x.shape == (32,)


# --------------------------------------------------------------------- bundled sample
def test_bundled_sample_file():
    path = bundled_text8_path()
    assert os.path.isfile(path)
    package_dir = Path(__file__).resolve().parents[1] / "hf_multinomial"
    relative = Path(path).resolve().relative_to(package_dir).as_posix()
    pyproject = (package_dir.parent / "pyproject.toml").read_text()
    assert '"data/resources/*"' in pyproject and fnmatch.fnmatch(relative, "data/resources/*")
    assert os.path.getsize(path) < 1_200_000

    with lzma.open(path, "rt", encoding="ascii") as f:
        text = f.read()
    assert 3_000_000 <= len(text) <= 3_200_000
    assert set(text) == TEXT8_SYMBOLS
    assert "  " not in text
    assert text.startswith(" anarchism ")


def test_load_bundled_text8(tmp_path):
    ds = load_bundled_text8(seq_len=256, cache_dir=tmp_path / "cache")
    with lzma.open(bundled_text8_path(), "rt", encoding="ascii") as f:
        text = f.read()
    vocab = CharVocabulary.text8()
    for split, (start, end, rows) in expected_rows(len(text), 256).items():
        assert ds[split].num_rows == rows
    last = ds["test"][ds["test"].num_rows - 1]["input_ids"]
    test_start, _, test_rows = expected_rows(len(text), 256)["test"]
    assert vocab.decode(last) == text[test_start + (test_rows - 1) * 256 : test_start + test_rows * 256]
