"""The field's published split lists, fetched on demand and checked against the sha256 the suite pins.

The lists are the public repositories' data (UniMatch's ``splits/``, U2PL's ``data/splits/``), not the
suite's: ``published_lists.json`` holds only where each file lives and its sha256. ``splits fetch``
downloads a data set's files into the user's cache, refuses any file whose sha256 differs, and imports
them with ``splits import``'s importer, so the splits are the same as when a user imports a checkout by
hand. Without a network it names the folder to bring and the import command.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

from benchmark.atomic import write_atomic
from benchmark.errors import UserError

PINS = Path(__file__).with_name("published_lists.json")
GITHUB_RAW = "https://raw.githubusercontent.com/{repo}/{ref}/{folder}/{file}"


@dataclass(frozen=True)
class Source:
    """One published folder of lists: its repository, revision, folder and the sha256 of each file."""

    source: str
    repo: str
    ref: str
    folder: str
    dataset: str
    files: dict[str, str]

    def url(self, file: str, mirror: str | None) -> str:
        """Where ``file`` is fetched from: GitHub, or ``<mirror>/<source>/<folder>/<file>``."""
        if mirror:
            return f"{mirror.rstrip('/')}/{self.source}/{self.folder}/{file}"
        return GITHUB_RAW.format(repo=self.repo, ref=self.ref, folder=self.folder, file=file)

    def cache(self) -> Path:
        """The cache folder of this source's files."""
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return base / "semiseg-bench" / "published-splits" / f"{self.repo.replace('/', '_')}@{self.ref}" / self.folder


def sources(dataset: str, source: str | None = None) -> list[Source]:
    """The pinned folders of ``dataset`` (UniMatch's and U2PL's, or the one named)."""
    pins = [Source(**entry) for entry in json.loads(PINS.read_text())["sources"]]
    known = sorted({pin.dataset for pin in pins})
    if dataset not in known:
        raise UserError(f"no published lists of {dataset!r} to fetch; published: {', '.join(known)} (CamVid, "
                        "ADE20K and the demo: python -m benchmark splits make)")
    chosen = [pin for pin in pins if pin.dataset == dataset and source in (None, pin.source)]
    if not chosen:
        raise UserError(f"{source} published no {dataset} lists; sources of {dataset}: "
                        + ", ".join(pin.source for pin in pins if pin.dataset == dataset))
    return chosen


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https or the user's own mirror
        return response.read()


def fetch(pin: Source, mirror: str | None = None, download=_download) -> Path:
    """The folder of ``pin``'s files in the cache, each downloaded when absent and checked."""
    folder = pin.cache()
    for file, digest in pin.files.items():
        target = folder / file
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            continue
        url = pin.url(file, mirror)
        try:
            data = download(url)
        except (URLError, OSError, ValueError) as error:
            raise UserError(f"cannot fetch {url} ({error}; no network?): bring the folder {pin.folder} of "
                            f"github.com/{pin.repo} at {pin.ref} and run: python -m benchmark splits import --from "
                            f"<that folder> --dataset {pin.dataset}") from None
        found = hashlib.sha256(data).hexdigest()
        if found != digest:
            raise UserError(f"{url} has sha256 {found[:12]}…, not the pinned {digest[:12]}…: the published list "
                            "changed or the mirror is wrong; nothing was imported")
        write_atomic(target, lambda handle, data=data: handle.write(data))
    return folder
