"""The report: aggregation over seeds, published numbers beside ours, files written."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console

from benchmark import report
from benchmark.records import RunPaths


def fake_record(dataset: str, split: str, method: str, seed: int, last: float, best: float, labeled: int,
                fraction: float, status: str = "finished", tag: str | None = None, root: Path | None = None) -> None:
    path = RunPaths.of(dataset, split, method, seed, tag, root).record
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "status": status, "dataset": dataset, "split": split, "method": method, "tag": tag, "seed": seed,
        "labeled": labeled, "labeled_fraction": fraction, "last_miou": last, "best_miou": best,
        "train_seconds": 10.0, "peak_memory_mb": 100.0, "weights": {"source": "file"}, "preset": dataset}))


def test_summary_mean_std_over_seeds_and_only_finished_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    for seed, last in enumerate((0.50, 0.52, 0.54)):
        fake_record("voc", "voc_92", "unimatch", seed, last, last + 0.01, 92, 92 / 10582)
    fake_record("voc", "voc_92", "unimatch", 3, 0.99, 0.99, 92, 92 / 10582, status="running")
    fake_record("voc", "voc_92", "mkd", 0, 0.40, 0.45, 92, 92 / 10582)
    half_written = RunPaths.of("voc", "voc_92", "mkd", 1, None).record
    fake_record("voc", "voc_92", "mkd", 1, 0.10, 0.10, 92, 92 / 10582)
    half_written.write_text(half_written.read_text()[:40])
    runs, skipped = report.load_runs(tmp_path)
    assert len(runs) == 4  # the running record and the half-written one are left out
    assert skipped == [f"{half_written} (not readable JSON: JSONDecodeError)"]
    summary = report.summarise(runs).set_index("method")
    assert summary.loc["unimatch", "seeds"] == 3
    assert math.isclose(summary.loc["unimatch", "last_mean"], 52.0)
    assert math.isclose(summary.loc["unimatch", "last_std"], 2.0)  # sample std of 50, 52, 54
    assert math.isclose(summary.loc["unimatch", "best_mean"], 53.0)
    assert math.isnan(summary.loc["mkd", "last_std"])


def test_published_numbers_and_unavailable_cells(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    fake_record("voc", "voc_92", "unimatch", 0, 0.70, 0.71, 92, 92 / 10582)
    fake_record("voc", "voc_92", "mkd", 0, 0.60, 0.61, 92, 92 / 10582)
    fake_record("voc", "voc_92", "speed", 0, 0.65, 0.66, 92, 92 / 10582)
    fake_record("demo", "demo_1_8", "fixmatch", 0, 0.30, 0.31, 256, 0.125)
    fake_record("demo", "demo_1_8", "mkd", 0, 0.20, 0.21, 256, 0.125)
    report.main(Console(record=True, width=200), which="local")
    csv = (tmp_path / "summary.csv").read_text()
    assert "75.20 (resnet101)" in csv and "75.16 (unknown)" in csv
    assert "voc,voc_92,mkd" in csv and report.NOT_AVAILABLE in csv
    demo_mkd = next(line for line in csv.splitlines() if line.startswith("demo,demo_1_8,mkd"))
    assert report.NOT_AVAILABLE not in demo_mkd  # no paper reports the demo: nothing to be missing
    markdown = (tmp_path / "summary.md").read_text()
    assert "## voc" in markdown and "voc_92 (92 labeled)" in markdown and "70.00 (n=1)" in markdown
    for suffix in ("png", "svg"):
        assert (tmp_path / f"miou_vs_labels.{suffix}").stat().st_size > 1000
