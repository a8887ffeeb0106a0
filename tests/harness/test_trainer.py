"""The trainer end to end on the tiny demo data: records, resume, external methods, numerics."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from benchmark import cli
from benchmark.records import RunPaths
from benchmark.step import Stepper


def run(*args: str) -> int:
    return cli.main(["run", "--quiet", *args])


def record(dataset: str, split: str, method: str, seed: int = 0, tag: str | None = None) -> dict:
    return json.loads(RunPaths.of(dataset, split, method, seed, tag).record.read_text())


def test_a_run_writes_config_metrics_record_and_checkpoint(env, tiny_config) -> None:
    assert run("--method", "fixmatch", "--split", "demo_1_4", "--config", str(tiny_config)) == 0
    paths = RunPaths.of("demo", "demo_1_4", "fixmatch", 0)
    rec = record("demo", "demo_1_4", "fixmatch")
    assert rec["status"] == "finished" and rec["completed_iterations"] == 4
    assert rec["labeled"] == 8 and rec["unlabeled"] == 24 and rec["val"] == 8
    assert 0 <= rec["last_miou"] <= 1 and rec["best_miou"] >= rec["last_miou"]
    assert len(rec["last_iou"]) == 7 and rec["eval"] == {"mode": "original", "scale": "single"}
    assert rec["method_params"] == {"threshold": 0.95}
    assert rec["weights"]["source"] == "file" and len(rec["weights"]["sha256"]) == 64
    assert rec["split_sha256"] and rec["torch"] == torch.__version__ and rec["device"] == "cpu"
    assert 0 < rec["data_wait_share"] < 1  # workers=0: the loading happens in the wait
    generated = json.loads((Path(rec["data_root"]) / "demo.json").read_text())
    assert rec["generated_data"] == generated and generated["size"] == 64  # which demo data: its manifest
    assert rec["val_sizes"] == {"64x64": 8}  # the resolution the report states
    lines = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [2, 4]
    assert set(lines[0]["losses"]) == {"loss", "loss_x", "loss_u", "mask_ratio", "pseudo_top_share"}
    assert paths.config.exists() and paths.checkpoint.exists() and not paths.lock.exists()
    # a finished run is not trained again
    assert run("--method", "fixmatch", "--split", "demo_1_4", "--config", str(tiny_config)) == 0
    assert record("demo", "demo_1_4", "fixmatch")["updated"] == rec["updated"]


@pytest.mark.slow
def test_resume_continues_at_the_checkpoint_and_reproduces_the_run(env, tiny_config, monkeypatch) -> None:
    args = ["--method", "unimatch", "--split", "demo_1_4", "--config", str(tiny_config),
            "--set", "schedule.iters=6", "--set", "schedule.eval_every=2"]
    assert run(*args, "--tag", "whole") == 0
    whole = record("demo", "demo_1_4", "unimatch", tag="whole")

    original = Stepper.__call__
    calls: list[int] = []

    def dies_at_three(self, next_batch, iteration):
        calls.append(iteration)
        if calls == [0, 1, 2, 3]:
            raise KeyboardInterrupt
        return original(self, next_batch, iteration)

    monkeypatch.setattr(Stepper, "__call__", dies_at_three)
    assert run(*args, "--tag", "cut") == 130  # interrupted during iteration 3; checkpoint at 2
    paths = RunPaths.of("demo", "demo_1_4", "unimatch", 0, "cut")
    assert torch.load(paths.checkpoint, weights_only=True)["iteration"] == 2
    assert run(*args, "--tag", "cut") == 0
    assert calls == [0, 1, 2, 3, 2, 3, 4, 5]  # the resumed run starts at iteration 2, not 0
    cut = record("demo", "demo_1_4", "unimatch", tag="cut")
    for key in ("last_miou", "best_miou", "last_iou"):
        assert cut[key] == whole[key]
    whole_lines = RunPaths.of("demo", "demo_1_4", "unimatch", 0, "whole").metrics.read_text().splitlines()
    cut_lines = paths.metrics.read_text().splitlines()
    assert [_without_time(a) for a in whole_lines] == [_without_time(b) for b in cut_lines]


def _without_time(line: str) -> dict:
    return {k: v for k, v in json.loads(line).items() if k != "train_seconds"}


def test_a_method_outside_the_repo_registers_as_module_class_and_runs(env, tiny_config, tmp_path,
                                                                         monkeypatch) -> None:
    package = tmp_path / "outside"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mine.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from benchmark.method import Method
        from benchmark.settings import setting

        class Halved(Method):
            """Supervised loss scaled by a parameter: a method written outside the suite."""
            summary = "test method"
            uses_unlabeled = False

            @dataclass
            class Params:
                scale: float = setting(0.5, "loss multiplier")

            def __init__(self, ctx, params):
                super().__init__(ctx, params)
                self.model = ctx.build_model()

            def training_step(self, batch, step):
                loss = self.params.scale * self.ctx.supervised_loss(self.model(batch.labeled.image),
                                                                    batch.labeled.mask)
                return {"loss": loss}
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert run("--method", "outside.mine:Halved", "--split", "demo_1_4", "--config", str(tiny_config),
               "--set", "method.scale=0.25") == 0
    rec = record("demo", "demo_1_4", "halved")
    assert rec["status"] == "finished" and rec["method_params"] == {"scale": 0.25}


def test_bf16_autocast_and_channels_last_train_on_cpu(env, tiny_config) -> None:
    assert run("--method", "supervised", "--split", "demo_1_4", "--config", str(tiny_config),
               "--set", "trainer.amp=bf16", "--set", "trainer.channels_last=on", "--tag", "bf16") == 0
    rec = record("demo", "demo_1_4", "supervised", tag="bf16")
    assert rec["amp"] == "bf16" and rec["channels_last"] is True and rec["last_miou"] is not None


def test_auto_numerics_resolve_per_cpu_in_the_record_while_the_config_digest_stays(env, tiny_config,
                                                                                   monkeypatch) -> None:
    from benchmark import hardware

    records = {}
    for native in (True, False):
        monkeypatch.setattr(hardware, "bf16_native", lambda native=native: native)
        tag = f"native{int(native)}"
        assert run("--method", "supervised", "--split", "demo_1_4", "--config", str(tiny_config), "--tag", tag) == 0
        records[native] = record("demo", "demo_1_4", "supervised", tag=tag)
    assert records[True]["eval_amp"] == "bf16" and records[False]["eval_amp"] == "off"
    assert records[True]["config_digest"] == records[False]["config_digest"]
    config = (RunPaths.of("demo", "demo_1_4", "supervised", 0, "native0").config.read_text())
    assert "eval_amp: auto" in config  # the configuration keeps the setting, the record its resolution
    cpu = hardware.cpu_info()
    rec = records[False]
    assert (rec["cpu_model"], rec["cpu_cores"], rec["cpu_capability"], rec["bf16_native"]) == \
        (cpu.model, cpu.cores, cpu.capability, cpu.bf16_native)
    assert rec["device_name"] == cpu.model


def test_gradient_accumulation_consumes_micro_batches(env, tiny_config) -> None:
    assert run("--method", "supervised", "--split", "demo_1_4", "--config", str(tiny_config),
               "--set", "schedule.accumulate=2", "--set", "optim.lr_batch_rule=linear", "--tag", "acc") == 0
    rec = record("demo", "demo_1_4", "supervised", tag="acc")
    assert rec["accumulate"] == 2 and rec["lr"] == pytest.approx(0.05 * 4 * 2 / 8)


def test_user_errors_are_one_message_without_traceback(env, tiny_config, capsys) -> None:
    assert run("--method", "nope", "--split", "demo_1_4") == 2
    assert "unknown method 'nope'; available: " in capsys.readouterr().err
    assert run("--method", "fixmatch", "--split", "demo_full", "--config", str(tiny_config)) == 2
    assert "has no unlabeled images" in capsys.readouterr().err
    assert run("--method", "supervised", "--split", "demo_1_4", "--set", "optim.lrr=1") == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.lrr'" in err and "Traceback" not in err
