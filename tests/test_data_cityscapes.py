"""Tests for the Cityscapes loader and the synthetic segmentation maps.

No Cityscapes file is used (its licence forbids redistribution): the loader is checked on
synthetic label-id PNGs in the gtFine layout, against computations written out here
independently (Pillow's own resize, an integer index formula, a hand-written label table).
"""

import fnmatch
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_multinomial.data import cityscapes as cityscapes_module
from hf_multinomial.data.cityscapes import (
    CITYSCAPES_CATEGORY_COLORS,
    CITYSCAPES_CATEGORY_NAMES,
    CITYSCAPES_LABEL_TO_CATEGORY,
    cityscapes_categories,
    load_cityscapes,
    nearest_indices,
    nearest_resize,
)
from hf_multinomial.data.synthetic_maps import (
    random_rectangle_maps,
    synthetic_segmentation_dataset,
    write_synthetic_gtfine,
)


# Written out independently of the module, from the Cityscapes label table
# (cityscapesscripts/helpers/labels.py): label id ranges of each category.
CATEGORY_RANGES = {
    0: range(0, 7),  # void: unlabeled, ego vehicle, rectification border, out of roi, static, dynamic, ground
    1: range(7, 11),  # flat: road, sidewalk, parking, rail track
    2: range(11, 17),  # construction: building, wall, fence, guard rail, bridge, tunnel
    3: range(17, 21),  # object: pole, polegroup, traffic light, traffic sign
    4: range(21, 23),  # nature: vegetation, terrain
    5: range(23, 24),  # sky
    6: range(24, 26),  # human: person, rider
    7: range(26, 34),  # vehicle: car, truck, bus, caravan, trailer, train, motorcycle, bicycle
}


def expected_category(label_id):
    if label_id == -1:  # license plate: category vehicle in the official table
        return 7
    (category,) = [c for c, ids in CATEGORY_RANGES.items() if label_id in ids]
    return category


def expected_map(png_path, size):
    """Independent preprocessing: Pillow's NEAREST resize, then the table above."""
    height, width = size
    with Image.open(png_path) as image:
        small = np.asarray(image.resize((width, height), Image.NEAREST))
    return np.vectorize(expected_category)(small).astype(np.int64)


def sorted_label_files(gtfine_parent, split):
    return sorted(
        p.relative_to(gtfine_parent).as_posix()
        for p in Path(gtfine_parent).glob(f"gtFine/{split}/*/*_gtFine_labelIds.png")
    )


def as_numpy(dataset):
    return dataset.with_format("numpy")[:]["input_ids"] if len(dataset) else np.zeros((0,))


NUM_TRAIN_FILES, NUM_VAL_FILES, SEED = 7, 3, 11


@pytest.fixture(scope="module")
def gtfine_root(tmp_path_factory):
    """A folder holding a synthetic gtFine/ (7 train maps in 3 cities, 3 val maps) plus files to ignore."""
    root = tmp_path_factory.mktemp("cityscapes_folder")
    write_synthetic_gtfine(root, NUM_TRAIN_FILES, NUM_VAL_FILES, seed=SEED)
    # Files the loader must ignore; each would raise if read (wrong size or mode).
    for relative, mode in [
        ("gtFine/test/berlin/berlin_000000_000000_gtFine_labelIds.png", "L"),
        ("gtFine/train/aachen/aachen_000000_000000_gtFine_color.png", "RGB"),
        ("gtFine/train/aachen/aachen_000000_000000_gtFine_instanceIds.png", "I;16"),
    ]:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (8, 4)).save(path)
    (root / "gtFine/train/aachen/aachen_000000_000000_gtFine_polygons.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def gtfine_zip(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes_zip")
    return Path(write_synthetic_gtfine(root, NUM_TRAIN_FILES, NUM_VAL_FILES, seed=SEED, archive=True))


# ----------------------------------------------------------------------------- resize
class TestNearestResize:
    def test_equals_pillow_on_random_maps_and_sizes(self):
        rng = np.random.default_rng(0)
        for _ in range(300):
            src_h, src_w, dst_h, dst_w = (int(v) for v in rng.integers(1, 300, 4))
            labels = rng.integers(0, 34, (src_h, src_w)).astype(np.uint8)
            expected = np.asarray(Image.fromarray(labels, "L").resize((dst_w, dst_h), Image.NEAREST))
            got = nearest_resize(labels, (dst_h, dst_w))
            np.testing.assert_array_equal(got, expected, err_msg=f"{labels.shape} -> {(dst_h, dst_w)}")

    def test_equals_pillow_indices_on_long_axes(self):
        # Index images (values = row index) expose the sampled rows directly, for large sizes.
        rng = np.random.default_rng(1)
        for _ in range(100):
            src, dst = (int(v) for v in rng.integers(1, 5000, 2))
            index_image = np.repeat(np.arange(src, dtype=np.int32)[:, None], 2, axis=1)
            sampled = np.asarray(Image.fromarray(index_image, "I").resize((2, dst), Image.NEAREST))[:, 0]
            np.testing.assert_array_equal(nearest_indices(src, dst), sampled, err_msg=f"{src} -> {dst}")

    @pytest.mark.parametrize("size", [(32, 64), (128, 256)])
    def test_cityscapes_sizes_sample_pixel_centres(self, size):
        """1024 x 2048 -> size: output pixel i takes source pixel floor((i + 0.5) * src / dst), exactly."""
        rng = np.random.default_rng(2)
        labels = rng.integers(0, 34, (1024, 2048)).astype(np.uint8)
        dst_h, dst_w = size
        rows = [(2 * i + 1) * 1024 // (2 * dst_h) for i in range(dst_h)]  # exact integer arithmetic
        cols = [(2 * j + 1) * 2048 // (2 * dst_w) for j in range(dst_w)]
        expected = np.array([[labels[r, c] for c in cols] for r in rows])
        np.testing.assert_array_equal(nearest_resize(labels, size), expected)
        np.testing.assert_array_equal(
            nearest_resize(labels, size), np.asarray(Image.fromarray(labels).resize((dst_w, dst_h), Image.NEAREST))
        )
        if size == (32, 64):
            assert rows[:3] == [16, 48, 80] and cols[:3] == [16, 48, 80]

    def test_batched_maps(self):
        maps = np.random.default_rng(3).integers(0, 8, (5, 40, 70))
        batched = nearest_resize(maps, (9, 13))
        assert batched.shape == (5, 9, 13)
        for single, out in zip(maps, batched):
            np.testing.assert_array_equal(nearest_resize(single, (9, 13)), out)

    @pytest.mark.parametrize("size", [(0, 64), (32,), (32, 64, 1), "ab", (32.5, 64)])
    def test_invalid_size(self, size):
        with pytest.raises(ValueError, match="height, width"):
            nearest_resize(np.zeros((4, 4), dtype=np.int64), size)


# ----------------------------------------------------------------------------- label table
class TestLabelTable:
    @pytest.mark.parametrize(
        "label_id, category",
        [
            (7, 1), (26, 7), (24, 6), (23, 5), (21, 4), (11, 2), (17, 3), (0, 0), (-1, 7),
            (33, 7), (25, 6), (22, 4), (6, 0), (10, 1), (16, 2), (20, 3),
        ],
    )
    def test_hand_picked_ids(self, label_id, category):
        assert CITYSCAPES_LABEL_TO_CATEGORY[label_id] == category
        assert cityscapes_categories(np.array([label_id]))[0] == category

    def test_whole_table_against_independent_ranges(self):
        assert set(CITYSCAPES_LABEL_TO_CATEGORY) == set(range(-1, 34))
        for label_id, category in CITYSCAPES_LABEL_TO_CATEGORY.items():
            assert category == expected_category(label_id), label_id
        ids = np.arange(-1, 34).reshape(5, 7)
        mapped = cityscapes_categories(ids)
        assert mapped.dtype == np.int64 and mapped.shape == ids.shape
        np.testing.assert_array_equal(mapped, np.vectorize(expected_category)(ids))
        # uint8 input (as read from PNGs) maps the same way
        np.testing.assert_array_equal(cityscapes_categories(np.arange(34, dtype=np.uint8)), mapped.reshape(-1)[1:])

    @pytest.mark.parametrize("bad", [34, 255, -2, 1000])
    def test_ids_outside_the_table_raise(self, bad):
        with pytest.raises(ValueError, match=rf"{bad}.*some_file\.png"):
            cityscapes_categories(np.array([[7, bad], [0, 26]]), file="some_file.png")

    def test_non_integer_ids_raise(self):
        with pytest.raises(ValueError, match="integers"):
            cityscapes_categories(np.array([7.0]))

    def test_names_and_colours(self):
        assert CITYSCAPES_CATEGORY_NAMES == (
            "void", "flat", "construction", "object", "nature", "sky", "human", "vehicle",
        )
        assert len(CITYSCAPES_CATEGORY_COLORS) == 8
        assert CITYSCAPES_CATEGORY_COLORS[0] == (0, 0, 0)
        assert CITYSCAPES_CATEGORY_COLORS[1] == (128, 64, 128)  # road
        assert CITYSCAPES_CATEGORY_COLORS[5] == (70, 130, 180)  # sky
        assert CITYSCAPES_CATEGORY_COLORS[7] == (0, 0, 142)  # car
        assert len(set(CITYSCAPES_CATEGORY_COLORS)) == 8


# ----------------------------------------------------------------------------- loader
class TestLoadCityscapes:
    def test_splits_order_and_content(self, gtfine_root, tmp_path):
        data = load_cityscapes(gtfine_root, num_train=5, cache_dir=tmp_path)
        assert list(data) == ["train", "validation", "test"]
        train_files = sorted_label_files(gtfine_root, "train")
        val_files = sorted_label_files(gtfine_root, "val")
        assert len(train_files) == NUM_TRAIN_FILES and len(val_files) == NUM_VAL_FILES
        assert data["train"]["file"][:] == train_files[:5]
        assert data["validation"]["file"][:] == train_files[5:]
        assert data["test"]["file"][:] == val_files
        # ordering is by full relative path: city folders first, then file names
        assert train_files[0].startswith("gtFine/train/aachen/") and train_files[-1].startswith("gtFine/train/bremen/")
        for split in data.values():
            maps = as_numpy(split)
            assert maps.dtype == np.int64 and maps.shape == (len(split), 32, 64)
            for file, got in zip(split["file"], maps):
                np.testing.assert_array_equal(got, expected_map(gtfine_root / file, (32, 64)), err_msg=file)

    def test_maps_are_nontrivial(self, gtfine_root, tmp_path):
        maps = as_numpy(load_cityscapes(gtfine_root, num_train=5, cache_dir=tmp_path)["train"])
        assert set(np.unique(maps)) >= {1, 2, 5, 7}
        assert maps.min() >= 0 and maps.max() <= 7

    def test_size_128_by_256(self, gtfine_root, tmp_path):
        data = load_cityscapes(gtfine_root, size=(128, 256), num_train=5, cache_dir=tmp_path)
        maps = as_numpy(data["test"])
        assert maps.shape == (NUM_VAL_FILES, 128, 256)
        for file, got in zip(data["test"]["file"], maps):
            np.testing.assert_array_equal(got, expected_map(gtfine_root / file, (128, 256)))

    @pytest.mark.parametrize("num_train, sizes", [(0, (0, 7, 3)), (5, (5, 2, 3)), (7, (7, 0, 3)), (2500, (7, 0, 3))])
    def test_split_sizes(self, gtfine_root, tmp_path, num_train, sizes):
        data = load_cityscapes(gtfine_root, num_train=num_train, cache_dir=tmp_path)
        assert tuple(len(data[s]) for s in ("train", "validation", "test")) == sizes
        official_train = data["train"]["file"][:] + data["validation"]["file"][:]
        assert sorted(official_train) == sorted_label_files(gtfine_root, "train")

    def test_default_split_rule_is_2500(self):
        import inspect

        assert inspect.signature(load_cityscapes).parameters["num_train"].default == 2500
        assert inspect.signature(load_cityscapes).parameters["size"].default == (32, 64)

    def test_zip_folder_and_parent_give_the_same_dataset(self, gtfine_root, gtfine_zip, tmp_path):
        def read(root):
            data = load_cityscapes(root, num_train=5, cache_dir=tmp_path / "cache")
            return {name: (split["file"][:], as_numpy(split)) for name, split in data.items()}

        reference = read(gtfine_root)
        # the zip's members are written in a shuffled order
        with zipfile.ZipFile(gtfine_zip) as archive:
            members = [m for m in archive.namelist() if m.endswith("_labelIds.png")]
        assert members != sorted(members)
        for root in (gtfine_root / "gtFine", gtfine_zip, gtfine_zip.parent):
            other = read(root)
            for name in reference:
                assert other[name][0] == reference[name][0], (root, name)
                np.testing.assert_array_equal(other[name][1], reference[name][1])

    def test_torch_format_batches(self, gtfine_root, tmp_path):
        data = load_cityscapes(gtfine_root, num_train=5, cache_dir=tmp_path).with_format("torch")
        batch = data["train"][1:4]["input_ids"]
        assert isinstance(batch, torch.Tensor) and batch.dtype == torch.int64 and batch.shape == (3, 32, 64)

    def test_cache_is_reused_and_invalidated(self, tmp_path, monkeypatch):
        root = tmp_path / "data"
        gtfine = Path(write_synthetic_gtfine(root, 2, 1, seed=3))
        cache = tmp_path / "cache"
        first = load_cityscapes(root, num_train=1, cache_dir=cache)
        entries = [p for p in os.listdir(cache) if not p.startswith(".")]
        assert len(entries) == 1 and entries[0].startswith("cityscapes-32x64-")

        def fail(*args, **kwargs):
            raise AssertionError("the dataset was rebuilt instead of read from the cache")

        monkeypatch.setattr(cityscapes_module, "_build_split", fail)
        second = load_cityscapes(root, num_train=1, cache_dir=cache)
        np.testing.assert_array_equal(as_numpy(second["train"]), as_numpy(first["train"]))
        assert second["test"]["file"][:] == first["test"]["file"][:]
        # another split rule or size, or a changed file, is a new entry
        with pytest.raises(AssertionError, match="rebuilt"):
            load_cityscapes(root, num_train=2, cache_dir=cache)
        with pytest.raises(AssertionError, match="rebuilt"):
            load_cityscapes(root, size=(128, 256), num_train=1, cache_dir=cache)
        monkeypatch.undo()
        val_file = next(gtfine.glob("val/*/*_labelIds.png"))
        Image.fromarray(np.full((1024, 2048), 23, dtype=np.uint8)).save(val_file)  # all sky
        third = load_cityscapes(root, num_train=1, cache_dir=cache)
        assert (as_numpy(third["test"]) == 5).all()
        assert not (as_numpy(first["test"]) == 5).all()

    @pytest.mark.parametrize("bad_id", [34, 255])
    def test_label_id_outside_the_table_names_the_file(self, tmp_path, bad_id):
        gtfine = Path(write_synthetic_gtfine(tmp_path, 2, 1, seed=4))
        victim = sorted(gtfine.glob("train/*/*_labelIds.png"))[1]
        labels = np.asarray(Image.open(victim)).copy()
        labels[0, 0] = bad_id  # a pixel the 32 x 64 resize never samples: the whole map is checked
        Image.fromarray(labels, "L").save(victim)
        with pytest.raises(ValueError, match=rf"{bad_id}.*{victim.name}"):
            load_cityscapes(tmp_path, cache_dir=tmp_path / "cache")

    def test_bad_id_in_zip_names_the_member(self, tmp_path):
        labels = np.zeros((1024, 2048), dtype=np.uint8)
        labels[500, 1000] = 40
        path = tmp_path / "gtFine_trainvaltest.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for member, array in [
                ("gtFine/train/ulm/ulm_000000_000000_gtFine_labelIds.png", np.zeros_like(labels)),
                ("gtFine/val/lindau/lindau_000000_000000_gtFine_labelIds.png", labels),
            ]:
                with archive.open(member, "w") as f:
                    Image.fromarray(array, "L").save(f, format="PNG")
        message = r"40.*lindau_000000_000000_gtFine_labelIds\.png.*gtFine_trainvaltest\.zip"
        with pytest.raises(ValueError, match=message):
            load_cityscapes(path, cache_dir=tmp_path / "cache")

    def test_wrong_mode_and_size_name_the_file(self, tmp_path):
        gtfine = Path(write_synthetic_gtfine(tmp_path, 1, 1, seed=5))
        train_file = next(gtfine.glob("train/*/*_labelIds.png"))
        Image.new("RGB", (2048, 1024)).save(train_file)
        with pytest.raises(ValueError, match=rf"{train_file.name}.*mode 'RGB'"):
            load_cityscapes(tmp_path, cache_dir=tmp_path / "cache")

        small = np.random.default_rng(0).integers(0, 34, (512, 1024)).astype(np.uint8)
        Image.fromarray(small, "L").save(train_file)
        with pytest.raises(ValueError, match=rf"{train_file.name}.*512 x 1024"):
            load_cityscapes(tmp_path, cache_dir=tmp_path / "cache")
        data = load_cityscapes(tmp_path, source_size=None, cache_dir=tmp_path / "cache")
        np.testing.assert_array_equal(as_numpy(data["train"])[0], expected_map(train_file, (32, 64)))

    def test_missing_data(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="not found"):
            load_cityscapes(tmp_path / "nowhere", cache_dir=tmp_path / "cache")
        with pytest.raises(FileNotFoundError, match="gtFine_trainvaltest.zip"):
            load_cityscapes(tmp_path, cache_dir=tmp_path / "cache")
        write_synthetic_gtfine(tmp_path, 2, 0, seed=6)
        with pytest.raises(FileNotFoundError, match="gtFine/val"):
            load_cityscapes(tmp_path, cache_dir=tmp_path / "cache")
        not_a_zip = tmp_path / "notes.txt"
        not_a_zip.write_text("hello")
        with pytest.raises(ValueError, match="not a zip"):
            load_cityscapes(not_a_zip, cache_dir=tmp_path / "cache")

    def test_invalid_arguments(self, gtfine_root, tmp_path):
        with pytest.raises(ValueError, match="num_train"):
            load_cityscapes(gtfine_root, num_train=-1, cache_dir=tmp_path)
        with pytest.raises(ValueError, match="height, width"):
            load_cityscapes(gtfine_root, size=(32,), cache_dir=tmp_path)


# ----------------------------------------------------------------------------- synthetic data
class TestSyntheticMaps:
    def test_random_rectangle_maps(self):
        maps = random_rectangle_maps(200, seed=0)
        assert maps.shape == (200, 32, 64) and maps.dtype == np.int64
        assert set(np.unique(maps)) == set(range(8))  # every category shows up
        assert (maps[:, 0, :] == 5).all()  # sky on top
        assert (np.isin(maps[:, -1, :], [0, 1, 6, 7])).all()  # ground, void strip, vehicles, people at the bottom
        np.testing.assert_array_equal(maps, random_rectangle_maps(200, seed=0))
        assert not np.array_equal(maps, random_rectangle_maps(200, seed=1))
        # far from uniform, so a model can learn something
        frequencies = np.bincount(maps.ravel(), minlength=8) / maps.size
        assert frequencies.max() > 0.2 and frequencies.min() < 0.05

    def test_other_sizes_and_class_counts(self):
        maps = random_rectangle_maps(20, height=16, width=24, num_classes=3, seed=2)
        assert maps.shape == (20, 16, 24) and maps.min() >= 0 and maps.max() <= 2
        assert random_rectangle_maps(0).shape == (0, 32, 64)
        with pytest.raises(ValueError):
            random_rectangle_maps(3, num_classes=1)

    def test_synthetic_dataset(self):
        data = synthetic_segmentation_dataset(12, 5, 4, seed=7)
        assert {name: len(split) for name, split in data.items()} == {"train": 12, "validation": 5, "test": 4}
        assert data["train"].features["input_ids"].dtype == "int64"
        batch = data.with_format("torch")["train"][:3]["input_ids"]
        assert batch.shape == (3, 32, 64) and batch.dtype == torch.int64
        # held-out splits do not depend on the size of train
        other = synthetic_segmentation_dataset(30, 5, 4, seed=7)
        np.testing.assert_array_equal(as_numpy(other["validation"]), as_numpy(data["validation"]))
        assert not np.array_equal(as_numpy(data["validation"])[:4], as_numpy(data["test"]))

    def test_written_gtfine_layout(self, gtfine_root):
        train_files = sorted_label_files(gtfine_root, "train")
        val_files = sorted_label_files(gtfine_root, "val")
        assert train_files[:3] == [
            "gtFine/train/aachen/aachen_000000_000000_gtFine_labelIds.png",
            "gtFine/train/aachen/aachen_000000_000001_gtFine_labelIds.png",
            "gtFine/train/aachen/aachen_000000_000002_gtFine_labelIds.png",
        ]
        assert {f.split("/")[2] for f in val_files} <= {"frankfurt", "lindau", "munster"}
        seen = set()
        for file in train_files + val_files:
            with Image.open(gtfine_root / file) as image:
                assert image.mode == "L" and image.size == (2048, 1024)
                ids = np.unique(np.asarray(image))
            assert set(ids.tolist()) <= set(range(34)), file
            seen |= set(ids.tolist())
        assert {0, 7, 11, 23, 26} <= seen


def test_no_cityscapes_files_in_the_repository():
    """Cityscapes' licence forbids redistribution: no gtFine / leftImg8bit file may be committed."""
    repo = Path(__file__).resolve().parents[1]
    patterns = [
        "*_gtFine_*", "*_leftImg8bit*", "gtFine", "leftImg8bit",
        "gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip",
    ]
    skipped = ("__pycache__", "node_modules")
    offenders = []
    for directory, subdirs, files in os.walk(repo):
        subdirs[:] = [d for d in subdirs if not (d.startswith(".") or d in skipped or d.endswith(".egg-info"))]
        for name in subdirs + files:
            if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
                offenders.append(os.path.relpath(os.path.join(directory, name), repo))
    assert not offenders, f"Cityscapes files found in the repository: {offenders}"
