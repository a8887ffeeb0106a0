"""Mistakes that used to end in a traceback or a wrong answer: data errors inside loader workers, a full
disk under torch.save, incomplete records, tags that are not names, --fresh against a live run, a
finished run asked for another configuration, edited val lists, float notation, and the non-finite path.
Each starts from a clean state; the finished run beside it must stay untouched."""

from __future__ import annotations

import errno
import io
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from torch import nn
from torch._utils import ExceptionWrapper

from benchmark import cli, report
from benchmark.data import demo
from benchmark.errors import UserError
from benchmark.records import RunPaths
from benchmark.step import nonfinite_tensors
from test_bad_input import fails, tiny_run, write_lines
from helpers import fake_record


def every_user_error() -> list[type[UserError]]:
    found, todo = [], [UserError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


@pytest.mark.parametrize("cls", every_user_error(), ids=lambda c: c.__name__)
def test_every_user_error_survives_the_way_torch_reraises_a_worker_exception(cls: type[UserError]) -> None:
    assert len(every_user_error()) >= 2  # UserError and DataError at least
    message = "mask.png holds mask values [9] outside the 7 classes"
    try:
        raise cls(message)
    except cls:
        wrapper = ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0")
    with pytest.raises(UserError) as caught:
        wrapper.reraise()
    assert type(caught.value) is cls and cli.user_message(caught.value) == message
    assert str(pickle.loads(pickle.dumps(cls(message)))) == message


def bad_file_root(tmp_path: Path, tiny_root: Path) -> Path:
    """A copy of the tiny demo data whose first training sample is replaced by the test."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root)
    return root


def _rgb_mask(path) -> None:
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(path)


@pytest.mark.parametrize("problem, message", [
    ("values", "holds mask values [9] outside the 7 classes"),
    ("truncated", "is not a readable image"),
    ("random bytes", "is not a readable image"),
    ("size", "is 64x64 but its mask masks/train/00000.png is 64x60"),
    ("rgb mask", "has mode RGB: a mask must be a single-channel"),
    ("too few classes", "outside the 2 classes"),
    ("val mask", "holds mask values [9] outside the 7 classes"),
])
@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_data_errors_in_the_main_process_or_a_loader_worker_are_one_line(env, capsys, tmp_path, tiny_root, problem,
                                                                          message, workers) -> None:
    root = bad_file_root(tmp_path, tiny_root)
    image_file, mask_file = root / demo.image_path("train", 0), root / demo.mask_path("train", 0)
    write_lines(env, "demo_1_4", "labeled.txt", [f"{demo.image_path('train', 0)} {demo.mask_path('train', 0)}"])
    write_lines(env, "demo_1_4", "unlabeled.txt", [])
    extra = ["--set", f"data.workers={workers}"]
    if problem == "values":
        Image.fromarray(np.full((64, 64), 9, dtype=np.uint8)).save(mask_file)
    elif problem == "truncated":
        image_file.write_bytes(image_file.read_bytes()[:100])
    elif problem == "random bytes":
        image_file.write_bytes(np.random.default_rng(0).bytes(5000))
    elif problem == "size":
        Image.fromarray(np.zeros((60, 64), dtype=np.uint8)).save(mask_file)
    elif problem == "rgb mask":
        _rgb_mask(mask_file)
    elif problem == "too few classes":
        extra += ["--set", "data.num_classes=2", "--set", "data.class_names=[]"]
    else:
        Image.fromarray(np.full((64, 64), 9, dtype=np.uint8)).save(root / demo.mask_path("val", 3))
    assert message in fails(capsys, *tiny_run("--data-root", str(root), *extra))


class _FullDisk(io.RawIOBase):
    """A file whose writes fail with ENOSPC after ``room`` bytes, as on a full disk."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.handle.write(data)


@pytest.mark.slow
def test_a_full_disk_under_torch_save_says_so_and_keeps_the_last_checkpoint(env, capsys, monkeypatch) -> None:
    from benchmark import checkpoint

    real = checkpoint.write_atomic
    calls = []

    def second_write_fails(path, write):
        if path.name != "checkpoint.pt":  # best.pt
            return real(path, write)
        calls.append(path)
        if len(calls) == 1:
            return real(path, write)
        return real(path, lambda handle: write(_FullDisk(handle, 4096)))

    monkeypatch.setattr(checkpoint, "write_atomic", second_write_fails)
    message = fails(capsys, *tiny_run())  # checkpoints after iterations 1 and 2
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    assert f"could not write {paths.checkpoint}: No space left on device; the previous version is intact" in message
    assert torch.load(paths.checkpoint, weights_only=True)["iteration"] == 1
    assert not list(paths.folder.glob(".*.tmp"))


def test_report_names_the_records_it_skips(env, tmp_path) -> None:
    fake_record("demo", "demo_1_8", "fixmatch", 0, 0.3, 0.3, 256, 0.125)
    lacking = RunPaths.of("demo", "demo_1_8", "fixmatch", 1).record
    fake_record("demo", "demo_1_8", "fixmatch", 1, 0.3, 0.3, 256, 0.125)
    record = json.loads(lacking.read_text())
    del record["dataset"]
    lacking.write_text(json.dumps(record))
    listed = RunPaths.of("demo", "demo_1_8", "fixmatch", 2).record
    listed.parent.mkdir(parents=True)
    listed.write_text("[1, 2]")
    console = Console(record=True, width=300)
    report.main(console, which="local", reference=tmp_path / "none")
    text = console.export_text()
    assert f"skipped {lacking} is not a record of this version of the suite (lacks dataset): run " \
           "python -m benchmark.migrate_records" in text.replace("\n", "")
    assert f"skipped {listed} is not a run record (not a JSON object)" in text
    assert "1 runs; wrote" in text


@pytest.mark.parametrize("tag", ["../../../../outside", "a/b", ".hidden", "", "x" * 65])
def test_tags_are_names(env, capsys, tag: str) -> None:
    assert "is not a name" in fails(capsys, *tiny_run("--tag", tag))
    assert not (env / "results").exists() or not list((env / "results").rglob("record.json"))


def test_fresh_does_not_move_a_run_that_another_process_trains(env, capsys) -> None:
    import os

    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    paths.folder.mkdir(parents=True)
    (paths.folder / "metrics.jsonl").write_text("{}\n")
    paths.lock.write_text(f"{os.getppid()}\n")  # a live process holds the run
    assert f"is being trained by process {os.getppid()}" in fails(capsys, *tiny_run("--fresh"))
    assert (paths.folder / "metrics.jsonl").exists() and not list(paths.folder.parent.glob("seed0.replaced-*"))


def test_fresh_sets_the_old_files_aside_while_holding_the_lock(env, capsys) -> None:
    assert cli.main(tiny_run()) == 0
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    before = paths.record.read_text()
    assert cli.main(tiny_run("--fresh")) == 0
    aside = list(paths.folder.parent.glob("seed0.replaced-*"))
    assert len(aside) == 1 and (aside[0] / "record.json").read_text() == before
    assert not (aside[0] / ".lock").exists() and paths.record.exists()


def test_a_finished_run_asked_for_another_configuration_says_so(env, capsys) -> None:
    assert cli.main(tiny_run()) == 0
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    before = paths.record.read_text()
    message = fails(capsys, *tiny_run("--set", "optim.lr=0.01"))
    assert "finished with a different configuration (optim.lr: 0.05 there, 0.01 now)" in message
    assert "--tag NAME" in message and "--fresh" in message and paths.record.read_text() == before
    assert cli.main(tiny_run()) == 0 and "already finished" in capsys.readouterr().out


def test_an_edited_val_list_is_refused(env, capsys) -> None:
    val = env / "splits" / "demo" / "val.txt"
    val.write_text("".join(val.read_text().splitlines(keepends=True)[:-1]))
    assert "val.txt differs from the version recorded in" in fails(capsys, *tiny_run())


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("1.0e12", 1e12), ("5E-2", 0.05), (".5", 0.5)])
def test_numeric_settings_accept_every_float_notation(text: str, value: float) -> None:
    from benchmark import config
    from methods.supervised import Supervised

    assert config.resolve("demo", Supervised.Params, overrides=[f"optim.lr={text}"]).run.optim.lr == value


def _poison(monkeypatch, at: int, what: str) -> None:
    """Make step ``at`` give a NaN loss ('loss'), or leave a BatchNorm variance infinite under a finite
    loss ('batchnorm', after the optimizer step)."""
    from methods.supervised import Supervised

    original = Supervised.training_step

    def nan_loss(self, batch, step):
        out = original(self, batch, step)
        if step.iteration == at:
            out["loss"] = out["loss"] * float("nan")
        return out

    def infinite_variance(self, step):
        if step.iteration == at:
            norm = next(m for m in self.model.modules() if isinstance(m, nn.BatchNorm2d))
            norm.running_var.fill_(float("inf"))

    if what == "loss":
        monkeypatch.setattr(Supervised, "training_step", nan_loss)
    else:
        monkeypatch.setattr(Supervised, "after_step", infinite_variance)


def test_a_checkpoint_is_written_only_when_every_tensor_is_finite(env, capsys, monkeypatch) -> None:
    _poison(monkeypatch, at=2, what="batchnorm")  # the loss stays finite
    message = fails(capsys, *tiny_run("--set", "schedule.iters=4", "--set", "schedule.eval_every=2"))
    assert "after 4 steps 1 tensor(s) of the run are not finite (e.g. networks.model." in message
    assert "running_var" in message and "the last good checkpoint" in message
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    payload = torch.load(paths.checkpoint, weights_only=True)
    assert payload["iteration"] == 2 and nonfinite_tensors(payload) == []


def test_a_skipped_step_leaves_a_finished_run_with_finite_weights(env, capsys, monkeypatch) -> None:
    _poison(monkeypatch, at=1, what="batchnorm")
    assert cli.main(tiny_run("--set", "schedule.iters=4", "--set", "trainer.on_nonfinite=skip")) == 0
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    record = json.loads(paths.record.read_text())
    assert record["skipped_steps"] == 1 and record["status"] == "finished"
    assert nonfinite_tensors(torch.load(paths.checkpoint, weights_only=True)) == []


def test_the_nonfinite_advice_works_as_written(env, capsys, monkeypatch) -> None:
    _poison(monkeypatch, at=2, what="loss")
    args = tiny_run("--set", "schedule.iters=4")
    message = fails(capsys, *args, code=3)
    assert "set trainer.on_nonfinite=skip" in message
    assert cli.main([*args, "--set", "trainer.on_nonfinite=skip"]) == 0  # resumes the same run
    out = capsys.readouterr().out
    assert "resuming" in out and "at iteration 2" in " ".join(out.split())
    record = json.loads(RunPaths.of("demo", "demo_1_4", "supervised", 0).record.read_text())
    assert record["skipped_steps"] == 1 and record["completed_iterations"] == 4


def test_random_bytes_as_pretrained_weights_say_what_they_are(env, capsys, tmp_path) -> None:
    weights = tmp_path / "weights.pt"
    weights.write_bytes(np.random.default_rng(0).bytes(4000))
    message = fails(capsys, *tiny_run("--pretrained", str(weights)))
    assert f"{weights} is not a weights file this suite can read" in message and "weights_only" not in message


def test_stale_temporary_files_of_a_killed_write_are_removed_on_the_next_start(env) -> None:
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    paths.folder.mkdir(parents=True)
    stale = paths.folder / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert cli.main(tiny_run()) == 0
    assert not stale.exists()


def test_an_out_folder_that_is_a_file_is_refused(env, capsys, tmp_path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert "cannot use" in fails(capsys, *tiny_run("--out", str(target)))
