"""Importing the published split lists (../shared/reference-splits; skipped when absent)."""

from __future__ import annotations

import pytest

from benchmark import cli
from benchmark.data import importer, splits
from benchmark.errors import UserError
from helpers import shared_or_skip


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_SPLITS", str(tmp_path / "splits"))
    return tmp_path


def imported(name: str) -> splits.Split:
    split = splits.load(name)
    labeled, unlabeled = {i for i, _ in split.labeled}, {i for i, _ in split.unlabeled}
    assert not labeled & unlabeled, f"{name}: labeled and unlabeled overlap"
    assert not splits.structure_problems(split), splits.structure_problems(split)
    return split


@pytest.mark.slow
def test_unimatch_pascal_lists_get_unambiguous_names_and_published_counts(isolated) -> None:
    folder = shared_or_skip("reference-splits/unimatch/splits/pascal")
    assert cli.main(["splits", "import", "--from", str(folder), "--dataset", "voc"]) == 0
    expected = {"voc_92": (92, 10490), "voc_183": (183, 10399), "voc_366": (366, 10216), "voc_732": (732, 9850),
                "voc_1464": (1464, 9118), "voc_1_16": (662, 9920), "voc_1_8": (1323, 9259),
                "voc_1_4": (2646, 7936), "voc_u2pl_1_16": (662, 9920), "voc_u2pl_1_8": (1323, 9259),
                "voc_u2pl_1_4": (2646, 7936)}
    for name, (labeled, unlabeled) in expected.items():
        split = imported(name)
        assert (len(split.labeled), len(split.unlabeled), len(split.val)) == (labeled, unlabeled, 1449), name
        assert split.provenance["source"] == "unimatch" and split.provenance["published_labeled"] == labeled
    train_aug = {line.split()[0] for line in (folder / "train_aug.txt").read_text().splitlines() if line}
    for name in expected:
        split = splits.load(name)
        assert {i for i, _ in split.labeled} | {i for i, _ in split.unlabeled} == train_aug
    # classic labels come from the 1464 fine masks; the blended 1/16 is another set
    assert {i for i, _ in imported("voc_92").labeled} <= {i for i, _ in imported("voc_1464").labeled}
    assert set(imported("voc_1_16").labeled) != set(imported("voc_u2pl_1_16").labeled)


@pytest.mark.slow
def test_u2pl_lists_complete_bare_ids_and_agree_with_unimatch(isolated) -> None:
    unimatch = shared_or_skip("reference-splits/unimatch/splits/pascal")
    u2pl = shared_or_skip("reference-splits/u2pl/data/splits/pascal")
    assert cli.main(["splits", "import", "--from", str(unimatch), "--dataset", "voc"]) == 0
    report = importer.run(u2pl, "voc", None, None, force=False)
    assert any(line.startswith("voc_92: 92 labeled, 10490 unlabeled (already present, identical")
               for line in report)
    assert any(line.startswith("voc_u2pl_1_16: 662 labeled, 9920 unlabeled (already present, identical")
               for line in report)
    half = imported("voc_u2pl_1_2")
    assert (len(half.labeled), len(half.unlabeled)) == (5291, 5291)
    assert half.labeled[0][0].startswith("JPEGImages/") and half.labeled[0][1].startswith("SegmentationClass/")


def test_cityscapes_lists_of_unimatch_and_u2pl_are_different_splits(isolated) -> None:
    unimatch = shared_or_skip("reference-splits/unimatch/splits/cityscapes")
    u2pl = shared_or_skip("reference-splits/u2pl/data/splits/cityscapes")
    importer.run(unimatch, "cityscapes", None, None, force=False)
    importer.run(u2pl, "cityscapes", None, None, force=False)
    for name, count in (("1_30", 100), ("1_16", 186), ("1_8", 372), ("1_4", 744), ("1_2", 1488)):
        split = imported(f"cityscapes_{name}")
        assert len(split.labeled) == count and len(split.labeled) + len(split.unlabeled) == 2975
        assert len(split.val) == 500
    ours, theirs = imported("cityscapes_1_16"), imported("cityscapes_u2pl_1_16")
    assert len(theirs.labeled) == 186 and set(ours.labeled) != set(theirs.labeled)
    assert theirs.labeled[0][1].startswith("gtFine/train/") and theirs.labeled[0][1].endswith("_labelTrainIds.png")


def test_coco_lists_without_unlabeled_files_import_with_a_note(isolated) -> None:
    folder = shared_or_skip("reference-splits/unimatch/splits/coco")
    report = importer.run(folder, "coco", None, None, force=False)
    counts = {"coco_1_512": 232, "coco_1_256": 463, "coco_1_128": 925, "coco_1_64": 1849, "coco_1_32": 3697}
    for name, count in counts.items():
        split = imported(name)
        assert len(split.labeled) == count and len(split.val) == 5000 and split.unlabeled == []
    assert all("pass --root to derive it" in line for line in report)


def test_wrong_counts_and_conflicts_are_refused(isolated) -> None:
    source = isolated / "source"
    (source / "1_16").mkdir(parents=True)
    (source / "1_16" / "labeled.txt").write_text("JPEGImages/a.jpg SegmentationClass/a.png\n")
    (source / "1_16" / "unlabeled.txt").write_text("JPEGImages/b.jpg SegmentationClass/b.png\n")
    (source / "val.txt").write_text("JPEGImages/c.jpg SegmentationClass/c.png\n")
    with pytest.raises(UserError, match="voc_1_16 is published with 662"):
        importer.run(source, "voc", None, None, force=False)
    (source / "1_16").rename(source / "1_3")
    with pytest.raises(UserError, match="none of the published protocols"):
        importer.run(source, "voc", "u2pl", None, force=False)
