"""Split files: reading, writing, manifests with provenance, and validation.

Layout: ``splits/<dataset>/<split>/{labeled,unlabeled}.txt``, ``splits/<dataset>/val.txt``, for a data
set with a held-out test set ``splits/<dataset>/test.txt``, and ``splits/<dataset>/manifest.json``
(counts, sha256 of every file, provenance of every split). A line is ``<image> [<mask>]``, paths
relative to the dataset root, one space between them.

val selects and monitors (a run's evaluations, its best network); test, where there is one, reports:
a run evaluates its last and its best-on-val networks on it once, at its end.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from benchmark import PROJECT_ROOT
from benchmark.atomic import write_json, write_text
from benchmark.errors import UserError

Sample = tuple[str, str | None]
MANIFEST = "manifest.json"
TEST = "test.txt"


def splits_root() -> Path:
    """The folder holding every data set's splits (``BENCHMARK_SPLITS`` overrides the checkout's)."""
    return Path(os.environ.get("BENCHMARK_SPLITS") or PROJECT_ROOT / "splits")


def check_relative(path: str, where: str) -> str:
    """Refuse a split path that is absolute or climbs out of the dataset root."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise UserError(f"{where}: path {path!r} is not inside the dataset root; split paths must be "
                        "relative to the root and may not contain '..'")
    return path


def parse_lines(text: str, where: str, need_mask: bool) -> list[Sample]:
    """Parse split-file text into (image, mask) pairs, checking every line's shape."""
    samples: list[Sample] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise UserError(f"{where}:{number}: expected '<image> [<mask>]', got {line!r}")
        if need_mask and len(fields) == 1:
            raise UserError(f"{where}:{number}: a labeled line needs '<image> <mask>', got {line!r}")
        image = check_relative(fields[0], f"{where}:{number}")
        mask = check_relative(fields[1], f"{where}:{number}") if len(fields) == 2 else None
        samples.append((image, mask))
    return samples


def read_list(path: Path, need_mask: bool) -> list[Sample]:
    """Read one split file."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise UserError(f"cannot read split file {path}: {error.strerror or error}") from None
    return parse_lines(text, str(path), need_mask)


def format_lines(samples: list[Sample]) -> str:
    """Split-file text of ``samples``."""
    return "".join(f"{image} {mask}\n" if mask else f"{image}\n" for image, mask in samples)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_path(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Split:
    """A labeled/unlabeled partition of a data set's training pool, its val list and its test list (empty
    for a data set without a test set)."""

    name: str
    dataset: str
    folder: Path
    labeled: list[Sample]
    unlabeled: list[Sample]
    val: list[Sample]
    provenance: dict[str, Any] = field(default_factory=dict)
    test: list[Sample] = field(default_factory=list)

    def lists(self) -> list[tuple[str, list[Sample]]]:
        """Each list by its kind: labeled, unlabeled, val and, where there is one, test."""
        return [("labeled", self.labeled), ("unlabeled", self.unlabeled), ("val", self.val)] + (
            [("test", self.test)] if self.test else [])

    @property
    def test_path(self) -> Path:
        return self.folder.parent / TEST

    def test_sha256(self) -> str | None:
        """sha256 of the test list (recorded with the run's test evaluation), None without one. The test
        list is not part of the split's identity: it changes nothing a run trains or selects on."""
        return sha256_path(self.test_path) if self.test else None

    def files(self) -> dict[str, Path]:
        """The three files that define the split (what a run trains and selects on)."""
        return {"labeled.txt": self.folder / "labeled.txt", "unlabeled.txt": self.folder / "unlabeled.txt",
                "val.txt": self.folder.parent / "val.txt"}

    def checksums(self) -> dict[str, str]:
        """sha256 of each defining file (recorded with every run)."""
        return {name: sha256_path(path) for name, path in self.files().items() if path.exists()}

    def sha256(self) -> str:
        """One sha256 over the three files: the identity of the split."""
        digest = hashlib.sha256()
        for name, value in sorted(self.checksums().items()):
            digest.update(f"{name}:{value}\n".encode())
        return digest.hexdigest()

    @property
    def fraction(self) -> float:
        """Labeled share of the training pool."""
        total = len(self.labeled) + len(self.unlabeled)
        return len(self.labeled) / total if total else 0.0


def read_manifest(dataset: str) -> dict[str, Any]:
    """The manifest of ``dataset`` (empty when there is none yet)."""
    path = splits_root() / dataset / MANIFEST
    if not path.exists():
        return {"dataset": dataset, "splits": {}}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}; restore it from git") from None


def available() -> dict[str, str]:
    """Every split name under the splits folder, mapped to its data set."""
    found: dict[str, str] = {}
    root = splits_root()
    for labeled in sorted(root.glob("*/*/labeled.txt")):
        found[labeled.parent.name] = labeled.parent.parent.name
    return found


def missing_split_message(name: str) -> str:
    """What to type to get split ``name``: make it (CamVid, ADE20K, demo) or import it (VOC, Cityscapes, COCO)."""
    known = available()
    listing = ", ".join(sorted(known)) or "none"
    dataset = name.split("_")[0]
    if dataset in ("voc", "cityscapes", "coco"):
        folder = "pascal" if dataset == "voc" else dataset
        origin = (f"U2PL's data/splits/{folder}" if "_u2pl_" in name else f"UniMatch's splits/{folder}")
        how = (f"fetch the published lists: python -m benchmark splits fetch {dataset} (or, offline, import "
               f"a copy: python -m benchmark splits import --from <{origin} folder> --dataset {dataset})")
    else:
        how = (f"make it: python -m benchmark splits make --dataset {dataset} --root <data root> "
               "--ratios 1/16,1/8,1/4")
    return f"unknown split {name!r}. To get it, {how}. Available splits: {listing}"


def load(name: str) -> Split:
    """The split called ``name``, checked against its manifest."""
    dataset = available().get(name)
    if dataset is None:
        raise UserError(missing_split_message(name))
    folder = splits_root() / dataset / name
    labeled = read_list(folder / "labeled.txt", need_mask=True)
    unlabeled_path = folder / "unlabeled.txt"
    unlabeled = read_list(unlabeled_path, need_mask=False) if unlabeled_path.exists() else []
    val_path = folder.parent / "val.txt"
    if not val_path.exists():
        raise UserError(f"{val_path} is missing: every data set needs a val list beside its splits")
    val = read_list(val_path, need_mask=True)
    if not labeled:
        raise UserError(f"{folder / 'labeled.txt'} is empty: a split needs at least one labeled image")
    if not val:
        raise UserError(f"{val_path} is empty")
    manifest = read_manifest(dataset)
    entry = manifest.get("splits", {}).get(name, {})
    test_path = folder.parent / TEST
    test = read_list(test_path, need_mask=True) if test_path.exists() else []
    split = Split(name, dataset, folder, labeled, unlabeled, val, entry.get("provenance", {}), test)
    stored = dict(entry.get("sha256", {}))
    files = split.files()
    for listed in ("val", "test"):
        if "sha256" in manifest.get(listed, {}):
            stored[f"{listed}.txt"] = manifest[listed]["sha256"]
    checksums = split.checksums()
    if test:
        checksums[TEST], files[TEST] = sha256_path(test_path), test_path
    for file, digest in checksums.items():
        if file in stored and stored[file] != digest:
            raise UserError(f"{files[file]} differs from the version recorded in "
                            f"{splits_root() / dataset / MANIFEST} (sha256 mismatch): restore it "
                            "(git checkout) or make/import the split again")
    return split


def structure_problems(split: Split) -> list[str]:
    """Duplicates and overlaps within the lists (no file access)."""
    problems = []
    for kind, samples in split.lists():
        counts = Counter(image for image, _ in samples)
        repeated = sorted(image for image, n in counts.items() if n > 1)
        if repeated:
            extra = sum(counts[image] - 1 for image in repeated)
            problems.append(f"{kind}: {extra} duplicate lines, e.g. {', '.join(repeated[:3])}")
    overlap = {i for i, _ in split.labeled} & {i for i, _ in split.unlabeled}
    if overlap:
        problems.append(f"labeled and unlabeled share {len(overlap)} images, e.g. "
                        f"{', '.join(sorted(overlap)[:3])}")
    leak = ({i for i, _ in split.labeled} | {i for i, _ in split.unlabeled}) & {i for i, _ in split.val}
    if leak:
        problems.append(f"{len(leak)} val images are also training images, e.g. {', '.join(sorted(leak)[:3])}")
    seen = {i for i, _ in split.labeled} | {i for i, _ in split.unlabeled} | {i for i, _ in split.val}
    held = seen & {i for i, _ in split.test}
    if held:
        problems.append(f"{len(held)} test images are also training or val images, e.g. {', '.join(sorted(held)[:3])}")
    return problems


def write(dataset: str, name: str, labeled: list[Sample], unlabeled: list[Sample],
          provenance: dict[str, Any], val: list[Sample] | None = None) -> Path:
    """Write split ``name`` of ``dataset`` (and its val list when given) and record it in the manifest."""
    folder = splits_root() / dataset / name
    write_text(folder / "labeled.txt", format_lines(labeled))
    write_text(folder / "unlabeled.txt", format_lines(unlabeled))
    manifest = read_manifest(dataset)
    if val is not None:
        text = format_lines(val)
        write_text(folder.parent / "val.txt", text)
        manifest["val"] = {"count": len(val), "sha256": sha256_text(text)}
    manifest.setdefault("splits", {})[name] = {
        "labeled": len(labeled), "unlabeled": len(unlabeled),
        "sha256": {"labeled.txt": sha256_text(format_lines(labeled)),
                   "unlabeled.txt": sha256_text(format_lines(unlabeled))},
        "provenance": provenance}
    manifest["splits"] = dict(sorted(manifest["splits"].items()))
    write_json(folder.parent / MANIFEST, manifest)
    return folder


def write_unless_present(dataset: str, name: str, labeled: list[Sample], unlabeled: list[Sample],
                         provenance: dict[str, Any], val: list[Sample] | None, force: bool) -> str:
    """Write a split unless one with the same lines (in any order) is there, whose provenance then stays as
    it was; a split of that name with other content is replaced only with ``force``, since records made on
    it name its checksum."""
    if name in available():
        current = load(name)
        same_val = val is None or sorted(current.val) == sorted(val)
        if sorted(current.labeled) == sorted(labeled) and sorted(current.unlabeled) == sorted(unlabeled) and same_val:
            return "already present, identical"
        if not force:
            raise UserError(f"split {name} exists with other content; pass --force to replace it")
    elif val is None and not (splits_root() / dataset / "val.txt").exists():
        raise UserError(f"no val.txt in the source and none in splits/{dataset}/: import a folder with val.txt")
    write(dataset, name, labeled, unlabeled, provenance, val)
    return "written"


def write_test(dataset: str, test: list[Sample], provenance: dict[str, Any]) -> str:
    """Write ``splits/<dataset>/test.txt`` and its manifest entry (count, sha256, ``provenance``) unless an
    identical list (in any order) is there; a different one is replaced, since no run trains or selects on
    it (their records name its sha256)."""
    path = splits_root() / dataset / TEST
    if path.exists() and sorted(read_list(path, need_mask=True)) == sorted(test):
        return "already present, identical"
    text = format_lines(test)
    write_text(path, text)
    manifest = read_manifest(dataset)
    manifest["test"] = {"count": len(test), "sha256": sha256_text(text), "provenance": provenance}
    write_json(path.parent / MANIFEST, manifest)
    return "written"


def strata_of(names: list[str], pattern: str, option: str = "--strata") -> list[str]:
    """Each image's stratum: the part of its file name that ``pattern`` (a regular expression, given as
    ``option``) matches, its first group where it has one; for CamVid, ``^[^_]+`` names the video drive a
    frame comes from."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise UserError(f"cannot read {option} {pattern!r} as a regular expression: {error}") from None
    out = []
    for name in names:
        found = compiled.search(PurePosixPath(name).name)
        if found is None:
            raise UserError(f"{option} {pattern!r} matches nothing in the file name of {name}; "
                            "write a pattern every image's name matches")
        out.append(found.group(1) if compiled.groups else found.group(0))
    return out


def draw_order(size: int, seed: int, strata: list[str] | None = None) -> list[int]:
    """A seeded order of ``size`` images whose every prefix is a labeled set. Without ``strata`` it is a
    uniform permutation; with them, each stratum is permuted and its k-th image of m placed at (k + 1/2)/m,
    so every prefix holds each stratum in proportion to its size, to within about an image, and a prefix
    as long as the number of strata holds one image of each when they are of similar size."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.permutation(size).tolist()
    members: dict[str, list[int]] = {}
    for index, stratum in enumerate(strata):
        members.setdefault(stratum, []).append(index)
    keyed = []
    for rank, stratum in enumerate(sorted(members)):
        chosen = [members[stratum][i] for i in rng.permutation(len(members[stratum]))]
        keyed += [((k + 0.5) / len(chosen), rank, index) for k, index in enumerate(chosen)]
    return [index for _, _, index in sorted(keyed)]


def nested_draw(pool: list[Sample], counts: dict[str, int], seed: int,
                strata: list[str] | None = None) -> dict[str, tuple[list[Sample], list[Sample]]]:
    """Labeled subsets of ``pool`` of the given sizes, nested (each smaller one inside the larger),
    from one seeded order (``draw_order``: stratified when ``strata`` names each image's group); the rest
    of the pool is each subset's unlabeled list."""
    order = draw_order(len(pool), seed, strata)
    out = {}
    for name, count in counts.items():
        if not 0 < count <= len(pool):
            raise UserError(f"split {name}: cannot draw {count} labeled images from a pool of {len(pool)}")
        chosen = set(order[:count])
        labeled = [pool[i] for i in sorted(chosen)]
        unlabeled = [pool[i] for i in range(len(pool)) if i not in chosen]
        out[name] = (labeled, unlabeled)
    return out
