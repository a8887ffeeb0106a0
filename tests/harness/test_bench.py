"""``bench``: the bookkeeping (the parts add up to the step, the floor replays the step's network calls),
the loader and evaluation measurements, and the JSON it writes. No timing is asserted beyond consistency."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console

from benchmark import bench_steps as bench, cli, step_clock
from benchmark.data import splits

TINY = ["data.crop_size=48", "data.batch_size=4", "data.unlabeled_batch_size=4", "model.head_channels=16",
        "model.low_level_channels=8", "eval.batch_size=8", "data.workers=0"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bench")
    return bench.main(["supervised", "fixmatch", "mkd"], "demo", 3, TINY, Console(record=True, width=250),
                      save=folder)


@pytest.mark.slow
def test_the_parts_add_up_to_the_step_within_five_percent(measured) -> None:
    for summary in measured["methods"]:
        parts = summary["parts_ms"]
        assert set(parts) == set(step_clock.PHASES) and all(v >= 0 for v in parts.values())
        assert sum(parts.values()) == pytest.approx(summary["step_ms"], rel=0.05), summary["label"]
        named = sum(v for k, v in parts.items() if k != "other")
        assert named >= 0.9 * summary["step_ms"], summary  # 'other' is logging, not a hiding place
        assert parts["forward"] > 0 and parts["backward"] > 0
        assert len(summary["times_ms"]) == 3 and summary["step_ms"] in summary["times_ms"]  # warm-up left out


def test_the_floor_replays_the_network_calls_of_the_step(measured) -> None:
    by_method = {s["method"]: s for s in measured["methods"]}
    assert by_method["supervised"]["network_calls"] == 1
    assert by_method["mkd"]["network_calls"] == 8  # two teachers without gradient, two students with, each
    # on its labeled and its unlabeled batch in two passes (method.separate_forwards, the released code's)
    for summary in measured["methods"]:
        assert 0 < summary["floor_ms"] and summary["overhead"] == pytest.approx(summary["step_ms"] / summary["floor_ms"])
        assert summary["images_per_second"] == pytest.approx(1000 * summary["images_per_step"] / summary["step_ms"])
    assert by_method["supervised"]["images_per_step"] == 4 and by_method["fixmatch"]["images_per_step"] == 12
    assert all(s["step_memory_mb"] is None or s["step_memory_mb"] >= 0 for s in measured["methods"])


def test_mkd_calls_are_recorded_with_their_modes() -> None:
    candidate = bench._candidate("mkd", "demo", [*TINY, "trainer.channels_last=on"], "mkd")
    bench._timed_step(candidate, 0)
    calls = candidate.calls
    assert [c.grad for c in calls] == [False] * 4 + [True] * 4  # teachers, then students: labeled, unlabeled
    assert all(c.training and c.shape == (4, 3, 48, 48) and c.kwargs == {"features": True} for c in calls)
    assert all(p.grad is None for p in candidate.stepper.method.parameters())
    before = [p.clone() for p in candidate.stepper.method.student1.parameters()]
    step_clock.replay(calls, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(before, candidate.stepper.method.student1.parameters()))
    assert all(p.grad is None for p in candidate.stepper.method.parameters())  # the replay leaves no gradient


def test_vary_takes_values_with_commas_separated_by_semicolons() -> None:
    result = bench.main(["supervised"], "demo", 1, TINY, Console(record=True, width=250),
                        vary="data.crop_size=[48,64];32")
    assert [m["label"] for m in result["methods"]] == ["supervised (data.crop_size=[48,64])",
                                                       "supervised (data.crop_size=32)"]
    assert [m["pixels_per_batch"] for m in result["methods"]] == [4 * 48 * 64, 4 * 32 * 32]


def test_the_json_names_the_device_cpu_versions_commit_and_numerics(measured) -> None:
    from benchmark import hardware

    for key in ("device", "torch", "git_commit", "numerics", "methods", "preset", "cpu_model", "cpu_capability"):
        assert key in measured
    auto = "bf16" if hardware.bf16_native() else "off"
    assert measured["bf16_native"] is hardware.cpu_info().bf16_native
    assert measured["numerics"]["supervised"] == {"amp": "off", "channels_last": True, "teacher": "off", "eval": auto}


def test_evaluation_forwards_are_measured_in_both_numerics_side_by_side(measured) -> None:
    forwards = measured["eval_forwards"]
    assert forwards["resolved"] == measured["numerics"]["supervised"]["eval"]
    assert forwards["batch"] == 8 and forwards["size"] == [48, 48]
    assert all(len(times) == 3 for times in forwards["times_ms"].values())  # the warm-up round left out
    assert forwards["bf16_over_float32"] == pytest.approx(forwards["ms"]["bf16"] / forwards["ms"]["off"])


def test_bench_with_a_split_measures_the_loader_and_the_evaluation(env, tmp_path, capsys) -> None:
    assert cli.main(["bench", "--methods", "supervised", "--steps", "1", "--split", "demo_1_4", "--out",
                     str(tmp_path), *[arg for item in TINY for arg in ("--set", item)]]) == 0
    written = list((tmp_path / "bench").glob("bench-demo-*.json"))
    assert len(written) == 1
    result = json.loads(written[0].read_text())
    assert result["loader"]["images_per_second"] > 0 and result["loader"]["images_per_batch"] == 12
    modes = ("original", "center_crop", "sliding_window")
    assert set(result["evaluation"]["modes"]) == {f"{m} {dtype}" for m in modes for dtype in ("float32", "bf16")}
    resolved = [row for row in result["evaluation"]["modes"].values() if row["resolved"]]
    assert len(resolved) == 3 and {row["eval_amp"] for row in resolved} == {result["eval_forwards"]["resolved"]}
    assert result["evaluation"]["modes"]["original bf16"]["eval_amp"] == "bf16"
    assert 0 < result["evaluation"]["modes"]["original float32"]["forward_share"] <= 1
    assert result["evaluation"]["sliding_window_over_forwards"] >= 1
    assert result["methods"][0]["loader_ratio"] > 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "torch CPU capability" in out.splitlines()[0]
    assert "the loader alone" in out and "sliding window" in out
    assert splits.load("demo_1_4")  # the split is untouched


@pytest.mark.skipif(torch.cuda.is_available(), reason="the check runs for real where there is CUDA")
def test_gpu_check_without_cuda_says_so_in_one_line_and_succeeds(capsys) -> None:
    from benchmark import cli

    assert cli.main(["gpu-check"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("gpu-check: no CUDA device on this machine")
