"""`splits fetch`: the published lists, downloaded on demand, checked against the suite's sha256 pins."""

from __future__ import annotations

import hashlib
from urllib.error import URLError

import pytest

from benchmark import cli
from benchmark.data import importer, published, splits
from benchmark.errors import UserError
from helpers import shared_or_skip


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCHMARK_SPLITS", str(tmp_path / "splits"))
    return tmp_path


def test_every_pin_is_the_sha256_of_the_reference_copy() -> None:
    reference = shared_or_skip("reference-splits")
    for dataset in ("voc", "cityscapes", "coco"):
        for pin in published.sources(dataset):
            for file, digest in pin.files.items():
                path = reference / pin.source / pin.folder / file
                assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path


@pytest.mark.slow
def test_fetched_splits_have_the_published_labeled_counts(cache, capsys) -> None:
    mirror = shared_or_skip("reference-splits").as_uri()
    for dataset in ("voc", "cityscapes", "coco"):
        assert cli.main(["splits", "fetch", dataset, "--mirror", mirror]) == 0
    names = splits.available()
    assert set(names) == set(importer.PUBLISHED) - {"voc_1_2"}  # UniMatch has no blended 1/2; U2PL's is voc_u2pl_1_2
    for name in names:
        split = splits.load(name)
        assert len(split.labeled) == importer.PUBLISHED[name], name
        assert split.provenance["source_sha256"]["labeled"] in {
            digest for pin in published.sources(split.dataset) for digest in pin.files.values()}
        if split.dataset != "coco":
            assert len(split.labeled) + len(split.unlabeled) == importer.POOL[split.dataset], name
    assert splits.load("voc_92").provenance["commit"] == "0324f3dd4a22128105a5eb135d2586c0bb3cc647"
    assert len(splits.load("voc_92").val) == 1449 and len(splits.load("cityscapes_1_30").val) == 500
    capsys.readouterr()
    assert cli.main(["splits"]) == 0
    listing = capsys.readouterr().out
    assert "voc_92" in listing and "coco_1_512" in listing
    assert cli.main(["splits", "fetch", "voc", "--source", "unimatch", "--mirror", mirror]) == 0
    assert "already present, identical" in capsys.readouterr().out


def test_without_a_network_fetch_names_the_folder_to_bring_and_the_import(cache) -> None:
    pin = published.sources("voc", "unimatch")[0]

    def offline(url: str) -> bytes:
        raise URLError("Name or service not known")

    with pytest.raises(UserError, match=r"bring the folder splits/pascal of github.com/LiheYoung/UniMatch at "
                                        r"0324f3dd.*splits import --from <that folder> --dataset voc"):
        published.fetch(pin, download=offline)


def test_a_list_that_differs_from_its_pin_is_refused_and_not_kept(cache) -> None:
    pin = published.Source("unimatch", "LiheYoung/UniMatch", "abc", "splits/pascal", "voc",
                           {"val.txt": hashlib.sha256(b"2007_000033\n").hexdigest()})
    with pytest.raises(UserError, match="not the pinned"):
        published.fetch(pin, download=lambda url: b"2007_000034\n")
    assert not (pin.cache() / "val.txt").exists()
    assert published.fetch(pin, download=lambda url: b"2007_000033\n") == pin.cache()
    assert (pin.cache() / "val.txt").read_bytes() == b"2007_000033\n"


def test_fetch_of_a_data_set_without_published_lists_says_how_to_get_splits() -> None:
    with pytest.raises(UserError, match="splits make"):
        published.sources("camvid")
