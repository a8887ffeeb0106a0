"""``weights get`` and ``weights list``: offline, the one line names the file and where it goes."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest

from benchmark import cli, weights
from benchmark.errors import UserError


def test_without_a_network_get_names_the_file_to_bring_and_where(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url: str, dst: str, **kwargs: object) -> None:
        raise urllib.error.URLError("no route")

    with pytest.raises(UserError) as error:
        weights.get("resnet50", download=offline)
    expected = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert str(expected) in str(error.value) and "https://download.pytorch.org/models/resnet50-0676ba61.pth" in str(
        error.value)
    rows = {(backbone, variant): text for backbone, variant, text in weights.listing()}
    assert rows[("resnet50", "standard")] == (f"absent: `python -m benchmark weights get resnet50` puts it at "
                                              f"{expected}")
    assert "--set model.deep_stem=true --pretrained PATH" in rows[("resnet101", "deep stem")]
    assert rows[("efficientnet_lite0", "standard")].startswith("present: ")
    assert cli.main(["weights", "list"]) == 0 and "resnet101" in capsys.readouterr().out


def test_get_keeps_a_file_that_matches_its_published_prefix_and_says_its_sha256(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fetched = []

    def fake(url: str, dst: str, hash_prefix: str, progress: bool) -> None:
        fetched.append((url, hash_prefix))
        with open(dst, "wb") as handle:
            handle.write(b"weights")

    path, sha = weights.get("resnet18", download=fake)
    assert fetched == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd")]
    assert path == weights.hub_path("resnet18") and sha == hashlib.sha256(b"weights").hexdigest()
    assert weights.get("resnet18", download=fake)[0] == path and len(fetched) == 1  # present: nothing fetched
    with pytest.raises(UserError, match="no published weights to fetch"):
        weights.get("efficientnet_lite0")
