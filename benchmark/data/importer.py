"""Importing the field's published split lists under unambiguous names, with provenance.

Sources (auto-detected from the folder, or named with ``--source``):
- ``unimatch``: ``<split>/{labeled,unlabeled}.txt`` with ``image mask`` lines, and ``val.txt``
  (github.com/LiheYoung/UniMatch, folder ``splits/<dataset>``);
- ``u2pl``: the same layout with bare VOC ids or Cityscapes image paths per line
  (github.com/Haochen-Wang409/U2PL, folder ``data/splits/<dataset>``);
- ``cps``: files ``*labeled_1-<N>.txt`` and ``*unlabeled_1-<N>.txt`` in one folder
  (github.com/charlesCXK/TorchSemiSeg).

Names say which protocol a split belongs to: ``voc_92`` ... ``voc_1464`` are the classic VOC splits
(labels from the 1464 fine masks), ``voc_1_16`` ... the blended CPS splits (what papers call VOC 1/16),
``voc_u2pl_1_16`` ... U2PL's blended splits; ``cityscapes_1_16`` ... CPS/UniMatch's Cityscapes splits,
``cityscapes_u2pl_1_16`` ... U2PL's (other images); ``coco_1_512`` ... UniMatch's COCO splits.
Every imported split must have the published labeled count of its name.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from benchmark.data import splits
from benchmark.data.layouts import complete_line
from benchmark.data.splits import Sample
from benchmark.errors import UserError

ORIGINS = {"unimatch": "github.com/LiheYoung/UniMatch (splits/)",
           "u2pl": "github.com/Haochen-Wang409/U2PL (data/splits/)",
           "cps": "github.com/charlesCXK/TorchSemiSeg (subset_train_aug lists)"}

PUBLISHED = {
    "voc_92": 92, "voc_183": 183, "voc_366": 366, "voc_732": 732, "voc_1464": 1464,
    "voc_1_16": 662, "voc_1_8": 1323, "voc_1_4": 2646, "voc_1_2": 5291,
    "voc_u2pl_1_16": 662, "voc_u2pl_1_8": 1323, "voc_u2pl_1_4": 2646, "voc_u2pl_1_2": 5291,
    "cityscapes_1_30": 100, "cityscapes_1_16": 186, "cityscapes_1_8": 372, "cityscapes_1_4": 744,
    "cityscapes_1_2": 1488, "cityscapes_u2pl_1_16": 186, "cityscapes_u2pl_1_8": 372,
    "cityscapes_u2pl_1_4": 744, "cityscapes_u2pl_1_2": 1488,
    "coco_1_512": 232, "coco_1_256": 463, "coco_1_128": 925, "coco_1_64": 1849, "coco_1_32": 3697,
}
"""Published labeled count of every split name the importer gives."""

POOL = {"voc": 10582, "cityscapes": 2975, "coco": 118287}
U2PL_BLENDED = {"voc": {662: "1_16", 1323: "1_8", 2646: "1_4", 5291: "1_2"},
                "cityscapes": {186: "1_16", 372: "1_8", 744: "1_4", 1488: "1_2"}}
CLASSIC_VOC = {92, 183, 366, 732, 1464}


@dataclass
class Candidate:
    """One split found in a source folder."""

    source_name: str
    labeled_file: Path
    unlabeled_file: Path | None


def _first_line(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.strip():
            return line
    return ""


def detect(folder: Path) -> tuple[str, list[Candidate]]:
    """The source format of ``folder`` and the splits it holds."""
    nested = sorted(p.parent for p in folder.glob("*/labeled.txt"))
    if nested:
        candidates = [Candidate(d.name, d / "labeled.txt",
                                d / "unlabeled.txt" if (d / "unlabeled.txt").exists() else None) for d in nested]
        source = "unimatch" if len(_first_line(nested[0] / "labeled.txt").split()) == 2 else "u2pl"
        return source, candidates
    flat = sorted(folder.glob("*labeled_1-*.txt"))
    cps = [p for p in flat if not p.name.startswith("unlabeled") and "_unlabeled_" not in p.name]
    if cps:
        candidates = []
        for labeled in cps:
            ratio = re.search(r"1-(\d+)", labeled.name).group(1)
            unlabeled = next((p for p in flat if ("unlabeled" in p.name and f"1-{ratio}." in p.name)), None)
            candidates.append(Candidate(f"1-{ratio}", labeled, unlabeled))
        return "cps", candidates
    raise UserError(f"{folder} holds no split lists: expected <split>/labeled.txt folders (UniMatch, U2PL) "
                    "or *labeled_1-N.txt files (CPS)")


def our_name(dataset: str, source: str, source_name: str, labeled: int) -> str:
    """The suite's name of a published split."""
    ratio = re.fullmatch(r"(?:u2pl_)?1[_-](\d+)", source_name)
    if dataset == "voc" and source_name.isdigit() and labeled in CLASSIC_VOC:
        return f"voc_{labeled}"
    if source == "u2pl" and source_name.isdigit() and labeled in U2PL_BLENDED.get(dataset, {}):
        return f"{dataset}_u2pl_{U2PL_BLENDED[dataset][labeled]}"
    name = f"{dataset}{'_u2pl' if source_name.startswith('u2pl_') else ''}_1_{ratio.group(1)}" if ratio else ""
    if name in PUBLISHED:
        return name
    raise UserError(f"cannot name the {source} split {source_name!r} of {dataset} ({labeled} labeled): it is "
                    "none of the published protocols")


def read_entries(path: Path, dataset: str) -> list[Sample]:
    """A published list as (image, mask) pairs: two-field lines as they are, one-field lines completed."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    return [(image, mask) if mask else complete_line(dataset, image)
            for image, mask in splits.parse_lines(text, str(path), need_mask=False)]


def derive_unlabeled(dataset: str, labeled: list[Sample], root: Path | None, folder: Path) -> tuple[list[Sample], str]:
    """The unlabeled list of a split published without one: the train pool minus the labeled images.
    The pool comes from a train list in the source folder, or from the COCO images under ``root``."""
    pool: list[Sample] = []
    how = "not in the source; pass --root to derive it from the train images"
    lists = [folder / name for name in ("train_aug.txt", "train.txt") if (folder / name).exists()]
    if lists:
        pool, how = read_entries(lists[0], dataset), f"{lists[0].name} of the source minus the labeled list"
    elif root is not None and dataset == "coco":
        pool = [complete_line("coco", f"train2017/{p.name}") for p in sorted((root / "train2017").glob("*.jpg"))]
        how = f"the images of {root / 'train2017'} minus the labeled list"
    taken = {image for image, _ in labeled}
    return [sample for sample in pool if sample[0] not in taken], how


def _git_commit(folder: Path) -> str | None:
    """The commit of the git checkout ``folder`` lies in, if it lies in one."""
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run(folder: Path, dataset: str, source: str | None, root: Path | None, force: bool,
        commit: str | None = None) -> list[str]:
    """Import every split of ``folder``; returns one line of report per split. ``commit``: the source's
    revision (default: that of the git checkout holding ``folder``, if any), kept in the provenance."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    detected, candidates = detect(folder)
    source = source or detected
    val = read_entries(folder / "val.txt", dataset) if (folder / "val.txt").exists() else None
    commit = commit or _git_commit(folder)
    report = []
    for candidate in candidates:
        labeled = read_entries(candidate.labeled_file, dataset)
        name = our_name(dataset, source, candidate.source_name, len(labeled))
        if PUBLISHED.get(name) not in (None, len(labeled)):
            raise UserError(f"{candidate.labeled_file} has {len(labeled)} labeled images but {name} is published "
                            f"with {PUBLISHED[name]}: is it the right list for {dataset}?")
        if candidate.unlabeled_file:
            unlabeled, how = read_entries(candidate.unlabeled_file, dataset), "as published"
        else:
            unlabeled, how = derive_unlabeled(dataset, labeled, root, folder)
        provenance = {"summary": f"imported from {source}'s list {candidate.source_name}",
                      "origin": ORIGINS[source], "commit": commit, "source": source,
                      "source_name": candidate.source_name,
                      "source_sha256": {"labeled": splits.sha256_path(candidate.labeled_file)}
                      | ({"unlabeled": splits.sha256_path(candidate.unlabeled_file)}
                         if candidate.unlabeled_file else {}),
                      "unlabeled_list": how, "published_labeled": PUBLISHED.get(name),
                      "imported": date.today().isoformat()}
        status = splits.write_unless_present(dataset, name, labeled, unlabeled, provenance, val, force)
        report.append(f"{name}: {len(labeled)} labeled, {len(unlabeled)} unlabeled ({status}; unlabeled {how})")
    return report
