"""``eval RUN_DIR``: a finished run evaluated again gives its own numbers, and other lists are kept apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark import cli
from benchmark.records import RunPaths, read_per_image


@pytest.mark.slow
def test_eval_of_a_finished_run_reproduces_its_last_and_best_evaluations(env, tiny_config, capsys) -> None:
    assert cli.main(["run", "--quiet", "--method", "fixmatch", "--split", "demo_1_4", "--config", str(tiny_config),
                     "--set", "schedule.iters=6", "--set", "schedule.eval_every=2"]) == 0
    paths = RunPaths.of("demo", "demo_1_4", "fixmatch", 0)
    record = json.loads(paths.record.read_text())
    assert paths.best.exists()
    assert cli.main(["eval", str(paths.folder)]) == 0
    written = sorted((paths.folder / "evals").glob("*-last-original-*.json"))
    assert len(written) == 1
    last = json.loads(written[0].read_text())
    assert last["miou"] == record["last_miou"] and last["iteration"] == 6 and last["images"] == 8
    per_image = read_per_image(written[0].with_suffix(".npz"))
    assert np.array_equal(per_image["last_union"], read_per_image(paths.per_image)["last_union"])
    assert cli.main(["eval", str(paths.folder), "--checkpoint", "best"]) == 0
    best = json.loads(next((paths.folder / "evals").glob("*-best-original-*.json")).read_text())
    assert best["miou"] == record["best_miou"] and best["iteration"] == record["best_iteration"]
    subset = env / "three.txt"
    subset.write_text("".join(f"images/val/{i:05d}.png masks/val/{i:05d}.png\n" for i in range(3)))
    assert cli.main(["eval", str(paths.folder), "--list", str(subset)]) == 0
    assert len(list((paths.folder / "evals").glob("*-last-original-*.json"))) == 2
    assert "3 images of" in capsys.readouterr().out


def test_eval_takes_numerics_overrides_and_keeps_each_numerics_apart(env, tiny_config, capsys) -> None:
    from benchmark.config import dtype_name

    assert cli.main(["run", "--quiet", "--method", "supervised", "--split", "demo_1_4", "--config",
                     str(tiny_config)]) == 0
    paths = RunPaths.of("demo", "demo_1_4", "supervised", 0)
    record = json.loads(paths.record.read_text())
    results = {}
    for amp in ("off", "bf16"):
        assert cli.main(["eval", str(paths.folder), "--set", f"trainer.eval_amp={amp}"]) == 0
        assert f"(evaluation {dtype_name(amp)})" in capsys.readouterr().out
        results[amp] = json.loads((next((paths.folder / "evals").glob(f"*-last-original-{dtype_name(amp)}.json"))
                                   ).read_text())
        assert results[amp]["eval_amp"] == amp and results[amp]["cpu_model"] == record["cpu_model"]
    assert results[record["eval_amp"]]["miou"] == record["last_miou"]  # the run's own numerics, its own number
    assert abs(results["off"]["miou"] - results["bf16"]["miou"]) < 0.05
    assert cli.main(["eval", str(paths.folder), "--set", "data.crop_size=32"]) == 2
    assert "only trainer settings (device and numerics" in capsys.readouterr().err
    assert cli.main(["eval", str(paths.folder), "--set", "trainer.eval_amp=fp32"]) == 2
    assert "trainer.eval_amp" in capsys.readouterr().err


def test_eval_names_what_is_wrong(env, tiny_config, capsys) -> None:
    assert cli.main(["eval", str(env / "nowhere")]) == 2
    assert "holds no readable record.json" in capsys.readouterr().err
