"""Every user mistake ends in one clear message and a non-zero exit, without a traceback, and loses
nothing that was finished."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from benchmark import atomic, cli, reference
from benchmark.data import demo
from benchmark.errors import UserError
from benchmark.records import RunPaths


def fails(capsys, *args: str, code: int = 2) -> str:
    """Run the CLI, expect exit code ``code`` (2, or 3 for a run that diverged) and return the message
    (asserting there is no traceback)."""
    returned = cli.main(list(args))
    err = capsys.readouterr().err
    assert returned == code, err
    assert "Traceback" not in err and err.startswith("error:"), err
    return " ".join(err.split())


def tiny_run(*extra: str) -> list[str]:
    return ["run", "--quiet", "--method", "supervised", "--split", "demo_1_4", "--set", "data.crop_size=48",
            "--set", "data.workers=0", "--set", "model.head_channels=16", "--set", "model.low_level_channels=8",
            "--set", "schedule.iters=2", "--set", "schedule.eval_every=1", "--set", "eval.batch_size=8", *extra]


def write_lines(env: Path, split: str, name: str, lines: list[str]) -> None:
    """Rewrite a split file and its manifest entry (so the sha256 check passes: the content is the issue)."""
    from benchmark.data import splits

    path = env / "splits" / "demo" / split / name
    path.write_text("".join(line + "\n" for line in lines))
    manifest = splits.read_manifest("demo")
    manifest["splits"][split]["sha256"][name] = splits.sha256_path(path)
    (env / "splits" / "demo" / "manifest.json").write_text(json.dumps(manifest))


def test_missing_or_wrong_data_root(env, capsys, tmp_path, monkeypatch) -> None:
    from benchmark.data import splits

    sample = [("train/a.png", "trainannot/a.png")]
    splits.write("camvid", "camvid_1_2", sample, [("train/b.png", None)], {"summary": "test"},
                 [("val/c.png", "valannot/c.png")])
    camvid = ["run", "--method", "supervised", "--split", "camvid_1_2", "--preset", "camvid_cpu"]
    monkeypatch.delenv("BENCHMARK_CAMVID_ROOT", raising=False)
    monkeypatch.delenv("BENCHMARK_DATA", raising=False)
    assert "no data root for camvid: pass --data-root DIR, or set BENCHMARK_CAMVID_ROOT" in fails(capsys, *camvid)
    assert "does not exist or is not a folder" in fails(capsys, *camvid, "--data-root", str(tmp_path / "nowhere"))
    assert "lacks train, trainannot, val, valannot" in fails(capsys, *camvid, "--data-root", str(tmp_path))
    not_demo = tmp_path / "other"
    not_demo.mkdir()
    (not_demo / "x.txt").write_text("x")
    assert "holds no demo data set" in fails(capsys, *tiny_run("--data-root", str(not_demo)))


def test_unknown_split_method_and_dataset(env, capsys) -> None:
    assert "unknown split 'demo_1_99'" in fails(capsys, "run", "--method", "supervised", "--split", "demo_1_99")
    assert "unknown method 'fixmach'; available:" in fails(capsys, "run", "--method", "fixmach", "--split", "demo_1_4")
    assert "cannot import 'no_such_pkg.mod'" in fails(capsys, "run", "--method", "no_such_pkg.mod:Cls", "--split",
                                                  "demo_1_4")
    assert "unknown data set 'mnist'" in fails(capsys, "splits", "make", "--dataset", "mnist", "--root", ".")


def test_split_file_problems(env, capsys) -> None:
    write_lines(env, "demo_1_4", "labeled.txt", [])
    assert "labeled.txt is empty" in fails(capsys, *tiny_run())
    line = f"{demo.image_path('train', 0)} {demo.mask_path('train', 0)}"
    write_lines(env, "demo_1_4", "labeled.txt", [line, line])
    assert "labeled: 1 duplicate lines" in fails(capsys, *tiny_run())
    other = f"{demo.image_path('train', 1)} {demo.mask_path('train', 1)}"
    write_lines(env, "demo_1_4", "labeled.txt", [line, other])
    write_lines(env, "demo_1_4", "unlabeled.txt", [line])
    assert "labeled and unlabeled share 1 images" in fails(capsys, *tiny_run())
    write_lines(env, "demo_1_4", "unlabeled.txt", [])
    write_lines(env, "demo_1_4", "labeled.txt", [line, "images/train/99999.png masks/train/99999.png"])
    assert "labeled: 2 files missing" in fails(capsys, *tiny_run())
    write_lines(env, "demo_1_4", "labeled.txt", ["../../etc/passwd masks/train/00000.png"])
    assert "is not inside the dataset root" in fails(capsys, *tiny_run())


def test_config_key_mistakes_list_the_valid_keys(env, capsys, tmp_path) -> None:
    message = fails(capsys, *tiny_run("--set", "optim.momentun=0.9"))
    assert "unknown config key 'optim.momentun'; valid keys here: optim.lr" in message and "optim.momentum" in message
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  crop: 64\n")
    assert "unknown config key 'data.crop'" in fails(capsys, *tiny_run("--config", str(config)))
    config.write_text("data: [unclosed\n")
    assert "cannot read config file" in fails(capsys, *tiny_run("--config", str(config)))


def test_checkpoints_of_another_method_or_a_truncated_one_are_refused(env, capsys) -> None:
    assert cli.main(tiny_run("--set", "schedule.iters=4", "--set", "schedule.eval_every=2")) == 0
    source = RunPaths.of("demo", "demo_1_4", "supervised", 0).checkpoint
    target = RunPaths.of("demo", "demo_1_4", "fixmatch", 0).checkpoint
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes())
    fixmatch = tiny_run()
    fixmatch[fixmatch.index("supervised")] = "fixmatch"
    assert "is a checkpoint of method 'supervised', not 'fixmatch'" in fails(capsys, *fixmatch)
    other_config = RunPaths.of("demo", "demo_1_4", "supervised", 0, "other").checkpoint
    other_config.parent.mkdir(parents=True)
    other_config.write_bytes(source.read_bytes())
    assert "different configuration" in fails(capsys, *tiny_run("--tag", "other", "--set", "optim.lr=0.5"))
    target.write_bytes(source.read_bytes()[:1000])
    assert "is damaged or truncated" in fails(capsys, *fixmatch)


def test_a_nonfinite_loss_stops_with_its_parts_named_or_is_skipped(env, capsys, monkeypatch, tmp_path) -> None:
    from methods.supervised import Supervised

    original = Supervised.training_step

    def poisoned(self, batch, step):
        out = original(self, batch, step)
        if step.iteration == 2:
            out["loss_x"] = out["loss_x"] * float("nan")
            out["loss"] = out["loss_x"]
        return out

    monkeypatch.setattr(Supervised, "training_step", poisoned)
    message = fails(capsys, *tiny_run("--set", "schedule.iters=4"), code=3)
    assert "non-finite loss at iteration 2: loss=nan, loss_x=nan" in message
    assert "the last good checkpoint" in message
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    assert torch.load(paths.checkpoint, weights_only=True)["iteration"] == 2
    record = json.loads(paths.record.read_text())
    assert record["status"] == "diverged" and record["completed_iterations"] == 2
    assert record["diverged"] == {"iteration": 2, "what": "non-finite loss (loss=nan, loss_x=nan)"}
    again = fails(capsys, *tiny_run("--set", "schedule.iters=4"), code=3)  # the same command would diverge again
    assert "diverged at iteration 2 (non-finite loss (loss=nan, loss_x=nan))" in again and "--fresh" in again
    filed = list(reference.promote([paths.folder], reference=tmp_path / "reference"))  # a result, filed as one
    copy = RunPaths.of("demo", "demo_1_4", "supervised", 0, None, tmp_path / "reference").record
    assert len(filed) == 1 and json.loads(copy.read_text())["status"] == "diverged"
    assert cli.main(tiny_run("--set", "schedule.iters=4", "--set", "trainer.on_nonfinite=skip", "--tag", "skip")) == 0
    record = json.loads(RunPaths.of("demo", "demo_1_4", "supervised", 0, "skip").record.read_text())
    assert record["skipped_steps"] == 1 and record["status"] == "finished"


def test_a_run_whose_steps_are_nearly_all_skipped_stops_and_keeps_its_last_finite_checkpoint(env, capsys) -> None:
    from benchmark.step import nonfinite_tensors
    from benchmark.trainer import MAX_SKIPPED_IN_A_ROW

    message = fails(capsys, *tiny_run("--set", "schedule.iters=8", "--set", "optim.lr=1e12",
                                      "--set", "trainer.on_nonfinite=skip"), code=3)
    skipped = MAX_SKIPPED_IN_A_ROW + 1
    assert f"iteration {skipped}: " in message and f"{skipped} steps in a row and {skipped} in all" in message
    assert "non-finite" in message and "Lower optim.lr (now 1e+12)" in message and "is kept" in message
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    record = json.loads(paths.record.read_text())
    assert record["status"] == "diverged" and record["skipped_steps"] == MAX_SKIPPED_IN_A_ROW
    assert record["diverged"]["iteration"] == skipped
    saved = torch.load(paths.checkpoint, weights_only=True)
    assert saved["iteration"] == skipped and nonfinite_tensors(saved["networks"]) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "record.json"
    atomic.write_json(path, {"miou": 0.5})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(UserError, match="No space left on device; the previous version is intact"):
        atomic.write_json(path, {"miou": 0.7})
    assert json.loads(path.read_text()) == {"miou": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary file left behind


def test_a_second_process_on_the_same_run_is_refused(env, capsys, tmp_path) -> None:
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    paths.folder.mkdir(parents=True)
    paths.lock.write_text(f"{os.getppid()}\n")  # a live process (the test runner's parent)
    assert f"is being trained by process {os.getppid()}" in fails(capsys, *tiny_run())
    paths.lock.write_text("999999\n")  # a process that no longer exists: the stale lock is taken over
    assert cli.main(tiny_run()) == 0 and not paths.lock.exists()
