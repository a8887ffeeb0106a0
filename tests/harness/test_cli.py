"""The listing commands and the registry."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections import Counter

import pytest
from rich.console import Console

from benchmark import cli, sweep
from benchmark import method as registry
from benchmark.errors import Diverged


def test_methods_lists_every_registered_method(capsys) -> None:
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("supervised", "fixmatch", "unimatch"):
        assert name in out
    assert cli.main(["methods", "unimatch"]) == 0
    assert "method.fp_dropout" in capsys.readouterr().out


def test_registry_finds_builtins_without_a_list() -> None:
    found = registry.available()
    assert {"supervised", "fixmatch", "unimatch"} <= set(found)
    assert all(cls.name == name and cls.summary for name, cls in found.items())


def test_splits_lists_counts_and_provenance(env, capsys) -> None:
    assert cli.main(["splits"]) == 0
    out = capsys.readouterr().out
    assert "demo_1_4" in out and "test fixture" in out and "32" in out


def test_splits_make_writes_nested_splits_with_a_manifest(env, tiny_root, capsys) -> None:
    assert cli.main(["splits", "make", "--dataset", "demo", "--root", str(tiny_root), "--ratios", "1/8,1/2",
                     "--seed", "3"]) == 0
    from benchmark.data import splits

    small, large = splits.load("demo_1_8"), splits.load("demo_1_2")
    assert len(small.labeled) == 4 and len(large.labeled) == 16 and len(small.unlabeled) == 28
    assert set(small.labeled) < set(large.labeled)
    assert small.provenance["seed"] == 3 and small.provenance["ratio"] == "1/8"


def test_splits_make_with_strata_draws_from_every_group_and_records_the_counts(env, tiny_root) -> None:
    from benchmark.data import splits

    assert cli.main(["splits", "make", "--dataset", "demo", "--root", str(tiny_root), "--ratios", "1/2",
                     "--strata", r"(\d)\.png$"]) == 0
    split = splits.load("demo_1_2")
    drawn = Counter(image[-5] for image, _ in split.labeled)
    strata = split.provenance["strata"]
    assert strata["pattern"] == r"(\d)\.png$" and strata["labeled"] == dict(sorted(drawn.items()))
    assert strata["pool"] == {digit: 4 if digit in "01" else 3 for digit in "0123456789"}
    assert sum(drawn.values()) == 16 and all(1 <= drawn[digit] <= 2 for digit in "0123456789")
    assert "stratified by" in split.provenance["summary"]


def test_splits_make_keeps_an_identical_split_and_refuses_to_replace_another_without_force(env, tiny_root,
                                                                                           capsys) -> None:
    from benchmark.data import splits

    make = ["splits", "make", "--dataset", "demo", "--root", str(tiny_root), "--ratios", "1/8"]
    assert cli.main([*make, "--seed", "3"]) == 0
    manifest = (splits.splits_root() / "demo" / "manifest.json").read_text()
    entry = splits.read_manifest("demo")["splits"]["demo_1_8"]
    assert cli.main([*make, "--seed", "3"]) == 0
    assert "already present, identical" in capsys.readouterr().out
    assert (splits.splits_root() / "demo" / "manifest.json").read_text() == manifest
    assert cli.main([*make, "--seed", "4"]) == 2
    assert "exists with other content; pass --force" in capsys.readouterr().err
    assert splits.read_manifest("demo")["splits"]["demo_1_8"] == entry
    assert cli.main([*make, "--seed", "4", "--force"]) == 0
    assert splits.load("demo_1_8").provenance["seed"] == 4


def test_sweep_passes_its_options_and_the_results_folder_to_every_run(capsys, tmp_path) -> None:
    assert cli.main(["sweep", "--methods", "supervised,fixmatch", "--splits", "demo_1_8", "--seeds", "0,1",
                     "--print", "--out", str(tmp_path), "--", "--set", "schedule.iters=5"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 4
    for line in lines:
        assert line.endswith(f"--set schedule.iters=5 --out {tmp_path}") and " -- " not in line
    args = cli.build_parser().parse_args(lines[0].split()[3:])
    assert args.out == str(tmp_path) and args.set == ["schedule.iters=5"] and args.method == "supervised"


def test_sweep_with_a_space_separated_list_ends_in_one_line_naming_the_comma_form(capsys) -> None:
    assert cli.main(["sweep", "--methods", "supervised", "--splits", "demo_1_8", "--seeds", "1", "2", "--print",
                     "--", "--set", "schedule.iters=5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'2' is not an option of sweep" in captured.err and "--seeds 1,2" in captured.err


@pytest.mark.slow
def test_sweep_with_two_jobs_runs_a_two_run_grid_at_once(env, tiny_config, capsys) -> None:
    from benchmark.records import RunPaths

    assert cli.main(["sweep", "--methods", "supervised", "--splits", "demo_1_4", "--seeds", "0,1", "--jobs", "2",
                     "--", "--config", str(tiny_config)]) == 0
    out = capsys.readouterr().out
    assert "0 done, 2 running, 0 left of 2 (2 at a time)" in out and "all 2 runs finished" in out
    for seed in (0, 1):
        assert json.loads(RunPaths.of("demo", "demo_1_4", "supervised", seed).record.read_text())["status"] == "finished"
        assert (env / "results" / "sweep_logs" / f"supervised_demo_1_4_{seed}.log").stat().st_size > 0


@pytest.mark.slow
def test_sweep_through_submitits_local_executor_runs_a_two_run_grid(env, tiny_config, capsys) -> None:
    pytest.importorskip("submitit")
    from benchmark.records import RunPaths

    assert cli.main(["sweep", "--methods", "supervised", "--splits", "demo_1_4", "--seeds", "0,1", "--slurm-local",
                     "--gpus-per-run", "0", "--cpus-per-run", "1", "--", "--config", str(tiny_config)]) == 0
    out = capsys.readouterr().out
    assert "submitted 2 runs as local jobs" in out and "all 2 runs finished" in out
    for seed in (0, 1):
        assert json.loads(RunPaths.of("demo", "demo_1_4", "supervised", seed).record.read_text())["status"] == "finished"
    assert list((env / "results" / "slurm").glob("*_log.out"))


def test_sweep_slurm_without_submitit_or_sbatch_ends_in_one_line(env, monkeypatch, capsys) -> None:
    import builtins

    real_import = builtins.__import__

    def no_submitit(name, *args, **kwargs):
        if name == "submitit":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    assert cli.main(["sweep", "--methods", "supervised", "--splits", "demo_1_4", "--slurm"]) == 2
    assert "pip install -e '.[slurm]'" in capsys.readouterr().err
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert cli.main(["sweep", "--methods", "supervised", "--splits", "demo_1_4", "--slurm", "--jobs", "2"]) == 2
    assert "--slurm goes alone" in capsys.readouterr().err
    pytest.importorskip("submitit")
    if shutil.which("srun") is None:
        assert cli.main(["sweep", "--methods", "supervised", "--splits", "demo_1_4", "--slurm"]) == 2
        assert "use --slurm-local to try the grid" in capsys.readouterr().err


def test_sweep_lists_diverged_runs_apart_from_failed_ones(monkeypatch) -> None:
    codes = iter([0, Diverged.EXIT_CODE, 2])
    monkeypatch.setattr(subprocess, "run", lambda command, check: subprocess.CompletedProcess(command, next(codes)))
    out = io.StringIO()
    assert sweep.run(["mkd"], ["demo_1_8"], [0, 1, 2], [], Console(file=out, width=200)) == 1
    text = out.getvalue()
    assert "1 of 3 runs diverged (their records say so and report counts them):\n  --method mkd --split demo_1_8 --seed 1" in text
    assert "1 of 3 runs failed:\n  --method mkd --split demo_1_8 --seed 2" in text
