"""Your runs and the suite's reference records live apart: runs never write or resume a reference record,
report shows both side by side, and promote copies a finished run into the reference."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from benchmark import cli, report
from benchmark.report import load
from benchmark import reference as reference_module
from benchmark.records import PUBLISHED, REFERENCE_ROOT, RunPaths, results_root
from helpers import CHECKOUT, fake_record


def test_runs_go_to_out_then_the_environment_then_results_local(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("BENCHMARK_RESULTS", raising=False)
    assert results_root() == CHECKOUT / "results" / "local"
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path / "env"))
    assert results_root() == tmp_path / "env"
    assert results_root(tmp_path / "flag") == tmp_path / "flag"


def test_results_local_is_ignored_by_git_and_the_reference_is_not() -> None:
    if shutil.which("git") is None or not (CHECKOUT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/local/runs/x/record.json"], cwd=CHECKOUT)
    kept = subprocess.run(["git", "check-ignore", "-q", "results/reference/runs/x/record.json"], cwd=CHECKOUT)
    assert ignored.returncode == 0 and kept.returncode == 1


@pytest.mark.parametrize("out", [REFERENCE_ROOT, REFERENCE_ROOT / "runs", REFERENCE_ROOT / "runs" / ".." / "x"])
def test_a_run_never_writes_into_the_reference_folder(env, tiny_config, capsys, out: Path) -> None:
    before = sorted(p for p in REFERENCE_ROOT.rglob("*"))
    code = cli.main(["run", "--quiet", "--method", "supervised", "--split", "demo_1_4", "--config",
                     str(tiny_config), "--out", str(out)])
    assert code == 2
    assert "the suite's committed reference records, which no run writes" in capsys.readouterr().err
    assert sorted(p for p in REFERENCE_ROOT.rglob("*")) == before


def test_report_shows_local_and_reference_runs_side_by_side_and_never_averages_them(env, tmp_path) -> None:
    reference = tmp_path / "reference"
    for seed, last in enumerate((0.50, 0.52, 0.54)):
        fake_record("voc", "voc_92", "unimatch", seed, last, last, 92, 92 / 10582)  # yours
    for seed, last in enumerate((0.70, 0.72)):
        fake_record("voc", "voc_92", "unimatch", seed, last, last, 92, 92 / 10582, root=reference)
    console = Console(record=True, width=200)
    target = report.main(console, which="both", reference=reference, published_path=PUBLISHED)
    assert target == results_root()
    text = console.export_text()
    assert "reference runs: 2 finished" in text and "local runs: 3 finished" in text
    rows = (target / "summary.csv").read_text().splitlines()
    header = rows[0].split(",")
    by_source = {line.split(",")[header.index("source")]: line.split(",") for line in rows[1:]}
    assert float(by_source["local"][header.index("last_mean")]) == pytest.approx(52.0)
    assert float(by_source["reference"][header.index("last_mean")]) == pytest.approx(71.0)
    assert "| unimatch | reference |" in (target / "summary.md").read_text()
    only = report.main(Console(record=True), which="reference", reference=reference, published_path=PUBLISHED)
    assert only == reference and "local" not in (reference / "summary.csv").read_text()


def test_promote_copies_a_finished_run_and_refuses_what_it_should(env, tiny_config, tmp_path, capsys) -> None:
    reference = tmp_path / "reference"
    assert cli.main(["run", "--quiet", "--method", "supervised", "--split", "demo_1_4", "--config",
                     str(tiny_config)]) == 0
    run = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    lines = list(reference_module.promote([run.folder], reference=reference))
    target = RunPaths.of("demo", "demo_1_4", "supervised", 0, root=reference)
    assert lines and sorted(p.name for p in target.folder.iterdir()) == ["config.yaml", "metrics.jsonl", "per_image.npz",
                                                                        "record.json"]
    assert target.record.read_bytes() == run.record.read_bytes()
    with pytest.raises(Exception, match="exists; pass --replace"):
        list(reference_module.promote([run.folder], reference=reference))
    list(reference_module.promote([run.folder], replace=True, reference=reference))
    record = json.loads(run.record.read_text())
    run.record.write_text(json.dumps({**record, "status": "running"}))
    with pytest.raises(Exception, match="is not finished"):
        list(reference_module.promote([run.folder], replace=True, reference=reference))
    assert cli.main(["promote", str(tmp_path / "nothing")]) == 2
    assert "holds no readable record.json" in capsys.readouterr().err


def test_promote_as_tag_files_a_run_of_a_former_preset_as_a_variant(env, tiny_config, tmp_path) -> None:
    reference = tmp_path / "reference"
    assert cli.main(["run", "--quiet", "--method", "supervised", "--split", "demo_1_4", "--config",
                     str(tiny_config)]) == 0
    run = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    list(reference_module.promote([run.folder], reference=reference))
    old = RunPaths.of("demo", "demo_1_4", "supervised", 0, root=reference)
    list(reference_module.promote([old.folder], reference=reference, as_tag="it2"))
    new = RunPaths.of("demo", "demo_1_4", "supervised", 0, tag="it2", root=reference)
    before, after = json.loads(old.record.read_text()), json.loads(new.record.read_text())
    assert after.pop("tag") == "it2" and after.pop("filed_as") == "demo_1_4/supervised/seed0"
    assert before.pop("filed_as") is None and {**before, "tag": None} == {**after, "tag": None}
    assert (new.folder / "metrics.jsonl").read_bytes() == (old.folder / "metrics.jsonl").read_bytes()
    frame, _ = load.load_runs(reference, "reference")
    assert sorted(frame["method"]) == ["supervised", "supervised+it2"]
    with pytest.raises(Exception, match="give a tag other than the run's own"):
        list(reference_module.promote([new.folder], reference=reference, as_tag="it2"))
    shutil.rmtree(old.folder)
    list(reference_module.promote([new.folder], reference=reference, as_tag="none"))
    back = json.loads(old.record.read_text())
    assert back["tag"] is None and back["filed_as"] == "demo_1_4/supervised+it2/seed0"
