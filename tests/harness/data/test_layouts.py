"""Readers of the real data sets' layouts, on tiny fixture trees generated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark import cli, config
from benchmark.config import DataConfig
from benchmark.data import layouts, roots, splits, validate
from benchmark.data.datasets import PairReader
from benchmark.errors import DataError, UserError
from benchmark.yaml_files import default_preset
from methods.supervised import Supervised

RNG = np.random.default_rng(0)


def image(path: Path, height: int = 6, width: int = 8, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, format=fmt)


def mask(path: Path, values: np.ndarray, palette: bool = False) -> None:
    """Save class ids as a grayscale PNG, or as a palette PNG (indices = ids) like VOC's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(values.astype(np.uint8))
    if palette:
        picture = Image.new("P", picture.size)
        picture.putdata(values.astype(np.uint8).ravel().tolist())
        picture.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
    picture.save(path)


def preset_data(name: str) -> DataConfig:
    return config.resolve(name, Supervised.Params).run.data


def test_voc_palette_masks_and_the_aug_fallback(tmp_path: Path) -> None:
    values = RNG.integers(0, 21, (6, 8))
    values[0] = 255  # VOC's object borders
    image(tmp_path / "JPEGImages/2007_000032.jpg", fmt="JPEG")
    mask(tmp_path / "SegmentationClass/2007_000032.png", values, palette=True)
    assert Image.open(tmp_path / "SegmentationClass/2007_000032.png").mode == "P"
    aug = RNG.integers(0, 21, (6, 8))
    image(tmp_path / "JPEGImages/2008_000001.jpg", fmt="JPEG")
    mask(tmp_path / "SegmentationClassAug/2008_000001.png", aug)
    samples = [layouts.complete_line("voc", "2007_000032"), layouts.complete_line("voc", "2008_000001")]
    reader = PairReader(tmp_path, samples, preset_data("voc"))
    assert np.array_equal(reader.mask(0), values)  # palette indices, 255 kept as ignore
    assert np.array_equal(reader.mask(1), aug)  # listed SegmentationClass/ file absent: read from ...Aug
    assert reader.image(0).shape == (6, 8, 3)


def test_cityscapes_label_ids_are_mapped_to_train_ids(tmp_path: Path) -> None:
    ids = np.array([[7, 8, 11, 26], [33, 0, 1, 24]])
    image(tmp_path / "leftImg8bit/train/jena/jena_000001_000019_leftImg8bit.png", 2, 4)
    mask(tmp_path / "gtFine/train/jena/jena_000001_000019_gtFine_labelIds.png", ids)
    sample = layouts.complete_line("cityscapes", "leftImg8bit/train/jena/jena_000001_000019_leftImg8bit.png")
    assert sample[1] == "gtFine/train/jena/jena_000001_000019_gtFine_labelTrainIds.png"
    got = PairReader(tmp_path, [sample], preset_data("cityscapes")).mask(0)
    assert got.tolist() == [[0, 1, 2, 13], [18, 255, 255, 11]]
    mask(tmp_path / sample[1], np.array([[3, 3, 3, 3], [4, 4, 4, 255]]))  # train ids present: read as they are
    assert PairReader(tmp_path, [sample], preset_data("cityscapes")).mask(0).tolist() == [[3] * 4, [4, 4, 4, 255]]


def test_coco_masks_hold_81_classes(tmp_path: Path) -> None:
    values = np.array([[0, 80, 5], [17, 0, 255]])
    image(tmp_path / "train2017/000000000009.jpg", 2, 3, fmt="JPEG")
    mask(tmp_path / "masks/000000000009.png", values)
    sample = layouts.complete_line("coco", "train2017/000000000009.jpg")
    assert np.array_equal(PairReader(tmp_path, [sample], preset_data("coco")).mask(0), values)


def test_camvid_void_is_ignored_and_the_pool_is_paired_by_name(tmp_path: Path) -> None:
    for folder in ("train", "val"):
        for name in ("0001TP_006690.png", "0006R0_f01020.png"):
            image(tmp_path / folder / name)
            mask(tmp_path / f"{folder}annot" / name, np.full((6, 8), 11) - np.eye(6, 8, dtype=int) * 8)
    found = layouts.pools("camvid", tmp_path)
    assert found.pool == [("train/0001TP_006690.png", "trainannot/0001TP_006690.png"),
                          ("train/0006R0_f01020.png", "trainannot/0006R0_f01020.png")]
    assert len(found.val) == 2 and found.test == []
    got = PairReader(tmp_path, found.pool, preset_data("camvid_cpu")).mask(0)
    assert set(np.unique(got).tolist()) == {3, 255} and (got == 3).sum() == 6
    image(tmp_path / "test/Seq05VD_f00000.png")
    mask(tmp_path / "testannot/Seq05VD_f00000.png", np.zeros((6, 8)))
    assert layouts.pools("camvid", tmp_path).test == [("test/Seq05VD_f00000.png", "testannot/Seq05VD_f00000.png")]
    (tmp_path / "trainannot/0006R0_f01020.png").unlink()
    with pytest.raises(UserError, match="1 images under .* have no mask"):
        layouts.pools("camvid", tmp_path)


def test_every_built_in_data_set_says_whether_it_has_a_test_set() -> None:
    assert set(layouts.TEST_SETS) == set(layouts.LAYOUTS)
    assert "233 images" in layouts.test_set("camvid")
    for name in ("voc", "cityscapes", "coco", "ade20k", "demo"):
        assert layouts.test_set(name) == "none: reported on val"


def test_ade20k_zero_is_ignored_and_ids_move_down(tmp_path: Path) -> None:
    image(tmp_path / "images/training/ADE_train_00000001.jpg", 1, 4, fmt="JPEG")
    mask(tmp_path / "annotations/training/ADE_train_00000001.png", np.array([[0, 1, 150, 75]]))
    image(tmp_path / "images/validation/ADE_val_00000001.jpg", 1, 4, fmt="JPEG")
    mask(tmp_path / "annotations/validation/ADE_val_00000001.png", np.array([[0, 1, 2, 3]]))
    pool = layouts.pools("ade20k", tmp_path).pool
    assert pool == [("images/training/ADE_train_00000001.jpg", "annotations/training/ADE_train_00000001.png")]
    assert PairReader(tmp_path, pool, preset_data("ade20k")).mask(0).tolist() == [[255, 0, 149, 74]]


def test_reader_problems_are_named(tmp_path: Path) -> None:
    data = preset_data("camvid_cpu")
    image(tmp_path / "train/a.png")
    mask(tmp_path / "trainannot/a.png", np.full((6, 8), 12))
    image(tmp_path / "train/b.png", 5, 8)
    mask(tmp_path / "trainannot/b.png", np.zeros((6, 8)))
    (tmp_path / "train/c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    reader = PairReader(tmp_path, [("train/a.png", "trainannot/a.png"), ("train/b.png", "trainannot/b.png"),
                                   ("train/c.png", None), ("train/d.png", None)], data)
    for index, kind in ((0, "mask values out of range"), (1, "image and mask sizes differ"),
                        (2, "unreadable image"), (3, "missing file")):
        with pytest.raises(DataError) as caught:
            reader.pair(index) if index < 2 else reader.image(index)
        assert caught.value.kind == kind
    with pytest.raises(DataError, match=r"values \[12\] outside the 11 classes"):
        reader.mask(0)


def test_splits_check_reports_every_problem_with_counts(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / "camvid"
    for folder in ("train", "val"):
        for k in range(4):
            image(root / folder / f"{k}.png")
            mask(root / f"{folder}annot" / f"{k}.png", np.full((6, 8), k))
    monkeypatch.setenv("BENCHMARK_SPLITS", str(tmp_path / "splits"))
    assert cli.main(["splits", "make", "--dataset", "camvid", "--root", str(root), "--ratios", "1"]) == 0
    assert cli.main(["splits", "check", "camvid_full", "--root", str(root), "--preset", "camvid_cpu"]) == 0
    mask(root / "trainannot/0.png", np.full((6, 8), 40))
    mask(root / "trainannot/1.png", np.full((6, 8), 41))
    image(root / "train/2.png", 7, 8)
    (root / "val/3.png").unlink()
    capsys.readouterr()
    assert cli.main(["splits", "check", "camvid_full", "--root", str(root), "--preset", "camvid_cpu"]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out
    assert out.count("mask values out of range: ") == 1 and "2 files" in out
    assert "image and mask sizes differ: 1 files" in out and "val: missing file: 1 files" in out


def test_an_incomplete_root_is_named(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit").mkdir()
    with pytest.raises(UserError, match="lacks gtFine: it is not a complete cityscapes root"):
        roots.resolve("cityscapes", str(tmp_path), None)
    with pytest.raises(UserError, match="no data root for voc: pass --data-root DIR, or set BENCHMARK_VOC_ROOT"):
        roots.resolve("voc", None, None)
    with pytest.raises(UserError, match="does not exist"):
        roots.resolve("voc", str(tmp_path / "nowhere"), None)


def test_split_family_picks_its_preset(env) -> None:
    assert default_preset("voc_u2pl_1_16", "voc") == "voc_u2pl"
    assert default_preset("voc_92", "voc") == "voc"


def test_missing_files_accept_standard_variants(tmp_path: Path) -> None:
    image(tmp_path / "JPEGImages/x.jpg", fmt="JPEG")
    mask(tmp_path / "SegmentationClassAug/x.png", np.zeros((6, 8)))
    split = splits.Split("voc_test", "voc", tmp_path, [("JPEGImages/x.jpg", "SegmentationClass/x.png")], [],
                         [("JPEGImages/y.jpg", "SegmentationClass/y.png")])
    assert validate.missing_files(split, tmp_path) == [
        f"val: 2 files missing under {tmp_path}, e.g. JPEGImages/y.jpg, SegmentationClass/y.png"]


def test_the_reader_counts_image_sizes_most_common_first(tmp_path: Path) -> None:
    sizes = [(8, 10)] * 3 + [(4, 6)] * 2 + [(5, 5), (7, 7)]  # (height, width)
    samples = []
    for k, (height, width) in enumerate(sizes):
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(tmp_path / f"{k}.png")
        samples.append((f"{k}.png", None))
    assert PairReader(tmp_path, samples, preset_data("voc")).sizes(most=2) == {"10x8": 3, "6x4": 2, "other": 2}
    assert PairReader(tmp_path, samples[:3], preset_data("voc")).sizes() == {"10x8": 3}
