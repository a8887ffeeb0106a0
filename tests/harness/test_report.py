"""The report: aggregation over seeds, published numbers beside ours, files written."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from benchmark import report
from benchmark.records import RunPaths
from benchmark.report import load, statistics
from benchmark.run_record import RunRecord
from benchmark.migrate_records import FORMER_DEFAULTS
from helpers import fake_record, record_data


def test_summary_mean_std_over_seeds_and_only_finished_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    for seed, last in enumerate((0.50, 0.52, 0.54)):
        fake_record("voc", "voc_92", "unimatch", seed, last, last + 0.01, 92, 92 / 10582)
    fake_record("voc", "voc_92", "unimatch", 3, 0.99, 0.99, 92, 92 / 10582, status="running")
    fake_record("voc", "voc_92", "mkd", 0, 0.40, 0.45, 92, 92 / 10582)
    half_written = RunPaths.of("voc", "voc_92", "mkd", 1, None).record
    fake_record("voc", "voc_92", "mkd", 1, 0.10, 0.10, 92, 92 / 10582)
    half_written.write_text(half_written.read_text()[:40])
    runs, skipped = load.load_runs(tmp_path)
    assert len(runs) == 4  # the running record and the half-written one are left out
    assert skipped == [f"{half_written} is not readable JSON (JSONDecodeError)"]
    summary = statistics.summarise(runs).set_index("method")
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
    assert "voc,voc_92,mkd" in csv and load.NOT_AVAILABLE in csv
    demo_mkd = next(line for line in csv.splitlines() if line.startswith("demo,demo_1_8,mkd"))
    assert load.NOT_AVAILABLE not in demo_mkd  # no paper reports the demo: nothing to be missing
    markdown = (tmp_path / "summary.md").read_text()
    assert "## voc" in markdown and "voc_92 (92 labeled)" in markdown and "70.00 (n=1)" in markdown
    for suffix in ("png", "svg"):
        assert (tmp_path / f"miou_vs_labels.{suffix}").stat().st_size > 1000


def full_record(root: Path, split: str, method: str, seed: int, intersection, union, crop: int = 96,
                best_gap: float = 0.0, last_step: int = 100, labeled: int = 128, fraction: float = 0.0625,
                generated: dict | None = None, extra: dict | None = None, test=None,
                test_names: list[str] | None = None) -> None:
    """A finished demo record with config.yaml, metrics.jsonl and per_image.npz (its mIoU from the counts);
    ``extra`` fields are added to the record; ``test`` (intersection, union) makes it a run evaluated on a
    test list too (the best-on-val network is the last), with test_per_image.npz (its images ``test_names``,
    else test0.png, test1.png, ...)."""
    import numpy as np

    from benchmark import stats
    from benchmark.records import write_per_image

    tag = method.partition("+")[2] or None
    paths = RunPaths.of("demo", split, method.partition("+")[0], seed, tag, root)
    last = float(stats.miou(intersection.sum(0), union.sum(0))) / 100
    fake_record("demo", split, method.partition("+")[0], seed, last, last + best_gap / 100, labeled, fraction,
                tag=tag, root=root)
    record = json.loads(paths.record.read_text())
    record.update({"iterations": 100, "class_names": ["a", "b", "c"], "last_iou": [0.5, 0.5, 0.5],
                   "eval": {"mode": "original"}, "split_sha256": "s", "generated_data": generated, **(extra or {})})
    paths.record.write_text(json.dumps(record))
    paths.config.write_text(f"data:\n  crop_size: {crop}\nmodel:\n  backbone: efficientnet_lite0\n")
    lines = [{"iteration": step, "miou": last * step / last_step, "losses": {"loss": 1 / step}}
             for step in (last_step // 2, last_step)]
    paths.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
    counts = {"iteration": last_step, "intersection": intersection, "union": union}
    write_per_image(paths.per_image, [f"img{k}.png" for k in range(len(union))], {"last": counts, "best": counts})
    if test is not None:
        score = float(stats.miou(test[0].sum(0), test[1].sum(0))) / 100
        record["test"] = {"list": "test.txt", "sha256": "t", "images": len(test[1]), "last_miou": score,
                          "best_miou": score, "last_iou": [score] * 3, "best_iou": [score] * 3,
                          "last_iteration": last_step, "best_iteration": last_step, "per_image": "test_per_image.npz"}
        paths.record.write_text(json.dumps(record))
        counts = {"iteration": last_step, "intersection": test[0], "union": test[1]}
        write_per_image(paths.test_per_image, test_names or [f"test{k}.png" for k in range(len(test[1]))],
                        {"last": counts, "best": counts})


def made_up(seed: int, skill: float):
    import numpy as np

    rng = np.random.default_rng(seed)
    union = rng.integers(100, 400, size=(20, 3))
    return np.floor(union * rng.uniform(skill - 0.2, skill + 0.2, size=union.shape)).astype(np.int64), union


def test_intervals_marks_and_paired_comparison_from_per_image_counts(tmp_path: Path) -> None:
    import numpy as np

    from benchmark import stats

    for seed in range(3):
        full_record(tmp_path, "demo_1_16", "supervised", seed, *made_up(seed, 0.4))
        full_record(tmp_path, "demo_1_16", "fixmatch", seed, *made_up(10 + seed, 0.7))
        full_record(tmp_path, "demo_1_16", "unimatch", seed, *made_up(10 + seed, 0.7))  # fixmatch's counts
    runs, _ = load.load_runs(tmp_path)
    per_image = statistics.PerImage(runs)
    summary = statistics.attach_intervals(statistics.summarise(runs), per_image).set_index("method")
    weights = stats.resample_weights(20, seed=0)
    expected = stats.cell_interval([made_up(s, 0.4) for s in range(3)], weights)
    assert summary.loc["supervised", "ci_low"] == expected.low and summary.loc["supervised", "ci_high"] == expected.high
    assert {summary.loc["fixmatch", "mark"], summary.loc["unimatch", "mark"]} == {"best", "tied"}
    assert summary.loc["supervised", "mark"] == ""
    lines = statistics.compare(runs, per_image, "unimatch", "fixmatch")
    assert len(lines) == 1 and "+0.00 [+0.00, +0.00]" in lines[0] and "not distinguishable" in lines[0]
    gain = statistics.compare(runs, per_image, "fixmatch", "supervised")[0]
    direct = stats.difference_interval([made_up(10 + s, 0.7) for s in range(3)], [made_up(s, 0.4) for s in range(3)],
                                       weights)
    assert str(direct) in gain and "0 outside" in gain and direct.low > 0
    assert np.isclose(summary.loc["fixmatch", "last_mean"], direct.estimate + summary.loc["supervised", "last_mean"])


def test_protocol_checks_name_the_cells_and_mixed_protocols_are_never_averaged(tmp_path: Path) -> None:
    from benchmark.protocol_checks import protocol_checks

    full_record(tmp_path, "demo_1_16", "supervised", 0, *made_up(0, 0.6))
    full_record(tmp_path, "demo_1_16", "supervised", 1, *made_up(1, 0.6), crop=64)
    full_record(tmp_path, "demo_1_8", "supervised", 0, *made_up(2, 0.3), labeled=256, fraction=0.125)
    full_record(tmp_path, "demo_1_8", "fixmatch", 0, *made_up(3, 0.5), best_gap=2.5, labeled=256, fraction=0.125)
    full_record(tmp_path, "demo_1_8", "unimatch", 0, *made_up(4, 0.5), last_step=80, labeled=256, fraction=0.125)
    full_record(tmp_path, "demo_1_16", "supervised+short", 0, *made_up(5, 0.5))
    full_record(tmp_path, "demo_1_8", "supervised+short", 0, *made_up(6, 0.4), labeled=256, fraction=0.125)
    runs, _ = load.load_runs(tmp_path)
    summary = statistics.summarise(runs)
    assert len(summary[summary["split"] == "demo_1_16"]) == 3  # one row per protocol, each of one seed
    lines = protocol_checks(runs, summary)["demo"]
    assert len(lines) == 6
    assert lines[0].startswith("fewer than 3 seeds") and "fixmatch on demo_1_8 (local) (n=1)" in lines[0]
    assert "supervised+short" not in lines[0] and lines[0].endswith("; 2 of the 2 tagged-variant cells")
    assert "differ in protocol" in lines[1] and lines[1].endswith("supervised on demo_1_16 (local) (crop)")
    assert lines[2].startswith("supervised (local) is not ordered by labeled count")
    assert lines[3].startswith("supervised+short (local) is not ordered by labeled count: demo_1_16 ")
    assert "peaked early" in lines[4] and "fixmatch on demo_1_8 (local) seed 0 (2.5)" in lines[4]
    assert "not at the final step" in lines[5] and "unimatch on demo_1_8 (local) seed 0 (last at 80 of 100)" in lines[5]


def test_runs_whose_resolved_numerics_differ_are_never_averaged_and_the_check_names_numerics(tmp_path: Path) -> None:
    from benchmark.protocol_checks import protocol_checks

    bf16 = {"amp": "off", "teacher_amp": "off", "eval_amp": "bf16", "channels_last": True, "cpu_model": "Some CPU",
            "cpu_cores": 2, "cpu_capability": "AVX512", "bf16_native": True}
    float32 = {**bf16, "eval_amp": "off", "cpu_capability": "AVX2", "bf16_native": False}
    full_record(tmp_path, "demo_1_16", "fixmatch", 0, *made_up(0, 0.6), extra=bf16)
    full_record(tmp_path, "demo_1_16", "fixmatch", 1, *made_up(1, 0.6), extra=float32)
    full_record(tmp_path, "demo_1_16", "fixmatch", 2, *made_up(2, 0.6), extra={"eval_amp": "off"})
    runs, _ = load.load_runs(tmp_path)
    summary = statistics.summarise(runs)
    assert len(summary) == 2 and sorted(summary["seeds"]) == [1, 2]
    lines = protocol_checks(runs, summary)["demo"]
    assert any(line.endswith("never averaged: fixmatch on demo_1_16 (local) (numerics)") for line in lines)
    setups = dict(zip(runs["seed"], runs["setup"]))
    assert "Some CPU (2 cores, AVX512, bf16 native) x " in setups[0]
    assert "step float32, teachers float32, evaluation bf16" in setups[0]
    assert "Some CPU (2 cores, AVX2, bf16 not native)" in setups[1] and "evaluation float32" in setups[1]
    assert "CPU not recorded" in setups[2] and "evaluation float32" in setups[2]


def test_runs_on_demo_data_made_with_other_options_are_never_averaged_with_the_default_data(tmp_path: Path) -> None:
    from benchmark.data import demo

    default = demo.manifest_of(demo.DemoSpec())
    former = demo.manifest_of(FORMER_DEFAULTS)
    harder = demo.manifest_of(demo.DemoSpec(max_distractors=2, max_noise=0.06))
    full_record(tmp_path, "demo_1_16", "supervised", 0, *made_up(0, 0.5), generated=former)
    full_record(tmp_path, "demo_1_16", "supervised", 1, *made_up(1, 0.5), generated=former)
    full_record(tmp_path, "demo_1_16", "supervised", 2, *made_up(2, 0.7), generated=default)
    full_record(tmp_path, "demo_1_16", "supervised", 3, *made_up(3, 0.6), generated=harder)
    runs, _ = load.load_runs(tmp_path)
    seeds = {protocol: sorted(group["seed"]) for protocol, group in runs.groupby("protocol")}
    assert sorted(seeds.values()) == [[0, 1], [2], [3]]
    assert (runs["protocols"] == 3).all() and runs["method"].str.startswith("supervised [").all()
    assert runs[runs["seed"] == 0]["setup"].item().endswith(
        ", demo data made with max_distractors=2, max_clutter=3, max_noise=0.06, max_blur=1.0")
    assert runs[runs["seed"] == 3]["setup"].item().endswith(", demo data made with max_distractors=2, max_noise=0.06")
    assert "demo data" not in runs[runs["seed"] == 2]["setup"].item()
    assert demo.variant({**default, "generator_version": 1}) == "generator_version=1"
    camvid = RunRecord.from_dict(record_data(dataset="camvid", split="camvid_1_8", preset="camvid_cpu"))
    assert "data" not in load.protocol_of(camvid, {}) and "demo" not in load.setup_of(
        camvid, {}, load.protocol_of(camvid, {}))
    assert demo.variant({key: value for key, value in default.items() if key != "max_blur"}) == "max_blur=None"


def test_the_setup_states_the_resolution_of_the_val_images() -> None:
    def setup(sizes: dict[str, int] | None) -> str:
        record = RunRecord.from_dict(record_data(val_sizes=sizes))
        return load.setup_of(record, {}, load.protocol_of(record, {}))

    assert "evaluation original on 320 val images of 112x112, CPU not recorded x 2 threads" in setup({"112x112": 320})
    mixed = {"500x375": 900, "375x500": 300, "other": 249}
    assert "val images of mixed sizes (most 500x375), CPU" in setup(mixed)
    assert "on 320 val images, CPU" in setup(None)


def test_runs_evaluated_at_two_resolutions_are_never_averaged(tmp_path: Path) -> None:
    def seed_with(seed: int, **fields: object) -> None:
        full_record(tmp_path, "demo_1_8", "supervised", seed, *made_up(seed, 0.5))
        path = RunPaths.of("demo", "demo_1_8", "supervised", seed, None, tmp_path).record
        path.write_text(json.dumps({**json.loads(path.read_text()), "val": 20, **fields}))

    seed_with(0, data_root="/data/half", val_sizes={"480x360": 20})
    seed_with(1, data_root="/data/half", val_sizes={"480x360": 20})
    seed_with(2, data_root="/data/full", val_sizes={"960x720": 20})
    runs, _ = load.load_runs(tmp_path)
    seeds = sorted(sorted(group["seed"]) for _, group in runs.groupby("protocol"))
    assert seeds == [[0, 1], [2]]
    assert "val images of 960x720, " in runs[runs["seed"] == 2]["setup"].item()
    assert "val images of 480x360, " in runs[runs["seed"] == 0]["setup"].item()


def test_latex_curves_per_class_and_variant_figures_are_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    for seed in range(3):
        full_record(tmp_path, "demo_1_16", "supervised", seed, *made_up(seed, 0.4))
        full_record(tmp_path, "demo_1_16", "fixmatch", seed, *made_up(10 + seed, 0.7))
    full_record(tmp_path, "demo_1_16", "fixmatch+weak", 0, *made_up(20, 0.5))
    console = Console(record=True, width=250)
    report.main(console, which="local", latex=True, compare_methods=("fixmatch", "supervised"))
    tex = (tmp_path / "summary.tex").read_text()
    assert "\\toprule" in tex and "\\textbf{" in tex and "fixmatch+weak" not in tex
    markdown = (tmp_path / "summary.md").read_text()
    assert "95% CI [" in markdown and "▲ top" in markdown and "fewer than 3 seeds" in markdown
    per_class = (tmp_path / "per_class.csv").read_text().splitlines()
    assert per_class[0] == "dataset,split,method,source,class,iou,vs_supervised" and len(per_class) == 1 + 3 * 3
    figures = [tmp_path / f"{name}.{suffix}" for name in ("miou_vs_labels", "miou_vs_labels_variants",
                                                          "curves_demo", "losses_demo") for suffix in ("png", "svg")]
    first = {path: path.read_bytes() for path in figures}
    assert all(len(data) > 1000 for data in first.values())
    assert "fixmatch - supervised = +" in console.export_text()
    report.main(Console(file=io.StringIO()), which="local")
    assert {path: path.read_bytes() for path in figures} == first, "the same records must give the same figure bytes"


def test_compare_lists_the_difference_on_each_seed_both_ran(tmp_path: Path) -> None:
    from benchmark import stats

    for seed in range(3):
        full_record(tmp_path, "demo_1_16", "fixmatch", seed, *made_up(10 + seed, 0.7))
    full_record(tmp_path, "demo_1_16", "supervised", 1, *made_up(1, 0.4))
    full_record(tmp_path, "demo_1_16", "supervised", 5, *made_up(5, 0.4))
    runs, _ = load.load_runs(tmp_path)
    line = statistics.compare(runs, statistics.PerImage(runs), "fixmatch", "supervised")[0]
    last = {name: float(stats.miou(*(c.sum(0) for c in made_up(*args)))) for name, args in
            (("fixmatch", (11, 0.7)), ("supervised", (1, 0.4)))}
    expected = last["fixmatch"] - last["supervised"]
    assert "n=3 vs 2" in line and f"per seed both ran: seed 1 {expected:+.2f} (fixmatch ahead on 1 of 1)" in line
    assert "not covered" in statistics.compare(runs[runs["seed"] != 1], statistics.PerImage(runs), "fixmatch", "supervised")[0]


def test_a_damaged_per_image_file_costs_its_cell_the_interval_and_nothing_else(tmp_path: Path) -> None:
    import math

    for seed in range(2):
        full_record(tmp_path, "demo_1_16", "supervised", seed, *made_up(seed, 0.4))
        full_record(tmp_path, "demo_1_16", "fixmatch", seed, *made_up(10 + seed, 0.7))
    damaged = RunPaths.of("demo", "demo_1_16", "fixmatch", 1, root=tmp_path).per_image
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    runs, skipped = load.load_runs(tmp_path)
    summary = statistics.attach_intervals(statistics.summarise(runs), statistics.PerImage(runs)).set_index("method")
    assert not skipped and summary.loc["fixmatch", "seeds"] == 2 and math.isnan(summary.loc["fixmatch", "ci_low"])
    assert summary.loc["supervised", "ci_low"] < summary.loc["supervised", "last_mean"]
    assert "no interval" in statistics.compare(runs, statistics.PerImage(runs), "fixmatch", "supervised")[0]


def test_fixture_records_make_the_headline_table_and_a_separate_variants_table(tmp_path: Path) -> None:
    from benchmark.tables import markdown

    for seed, last in enumerate((0.50, 0.52, 0.57)):
        fake_record("demo", "demo_1_16", "supervised", seed, last, last + 0.02, 128, 0.0625, root=tmp_path)
        fake_record("demo", "demo_1_16", "fixmatch", seed, last + 0.1, last + 0.1, 128, 0.0625, root=tmp_path)
    fake_record("demo", "demo_full", "supervised", 0, 0.8, 0.81, 2048, 1.0, root=tmp_path)
    fake_record("demo", "demo_1_8", "fixmatch", 0, 0.7, 0.75, 256, 0.125, tag="tau0", root=tmp_path)
    runs, _ = load.load_runs(tmp_path)
    text = markdown(statistics.summarise(runs))
    headline, variants = text.split("### demo: variants (tagged configurations)")
    header = next(line for line in headline.splitlines() if line.startswith("| method"))
    assert header == "| method | runs | demo_1_16 (128 labeled) | demo_full (2048 labeled) |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[2:] for line in headline.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert set(rows) == {"fixmatch", "supervised"}
    # fixmatch: 60, 62, 67 -> mean 63.00, sample std 3.61 (best the same); supervised best: 52, 54, 59 -> 55.00
    assert rows["fixmatch"][0].startswith("63.00 ± 3.61 (n=3)") and "best 63.00 ± 3.61" in rows["fixmatch"][0]
    assert rows["supervised"][0].startswith("53.00 ± 3.61 (n=3)") and "best 55.00 ± 3.61" in rows["supervised"][0]
    assert rows["supervised"][1].startswith("80.00 (n=1)") and "best 81.00" in rows["supervised"][1]
    assert rows["fixmatch"][1].strip(" |") == ""
    assert "| fixmatch+tau0 | local | 70.00 (n=1)<br>best 75.00 |" in variants
    assert "demo_1_8 (256 labeled) |" in variants and "demo_1_16" not in variants


def test_readme_block_states_the_protocol_and_holds_the_headline_table(tmp_path: Path) -> None:
    from benchmark.errors import UserError

    reference = tmp_path / "reference"
    for seed in range(3):
        full_record(reference, "demo_1_16", "supervised", seed, *made_up(seed, 0.5))
        path = RunPaths.of("demo", "demo_1_16", "supervised", seed, None, reference).record
        path.write_text(json.dumps({**json.loads(path.read_text()), "data_root": "/data/demo",
                                    "val_sizes": {"112x112": 20}}))
    fake_record("demo", "demo_1_16", "fixmatch", 0, 0.6, 0.6, 128, 0.0625, tag="tau0", root=reference)
    readme = tmp_path / "README.md"
    readme.write_text("# Suite\n\nintro\n<!-- report:begin -->\nold table\n<!-- report:end -->\n\nafter\n")
    report.main(Console(file=io.StringIO()), tmp_path / "local", "reference", reference=reference,
                published_path=tmp_path / "none.yaml", readme=readme)
    text = readme.read_text()
    assert text.startswith("# Suite\n\nintro\n<!-- report:begin -->") and text.endswith("<!-- report:end -->\n\nafter\n")
    assert "old table" not in text and "| fixmatch+tau0" not in text
    assert "- 3 runs (seeds 0, 1, 2; " in text and "efficientnet_lite0 DeepLabV3+" in text and "crop 96" in text
    assert "val images of 112x112, " in text
    assert "| supervised | " in text and "(n=3)" in text
    assert "![mIoU against labeled images, main methods](reference/miou_vs_labels.svg)" in text
    readme.write_text("no markers")
    with pytest.raises(UserError, match="no '<!-- report:begin -->'"):
        report.main(Console(file=io.StringIO()), tmp_path / "local", "reference", reference=reference,
                    published_path=tmp_path / "none.yaml", readme=readme)


def test_readme_block_shows_the_variants_evaluated_on_test_apart(tmp_path: Path) -> None:
    import numpy as np

    from benchmark import stats

    reference = tmp_path / "reference"
    for seed in range(2):
        full_record(reference, "demo_1_16", "supervised", seed, *made_up(seed, 0.5))
        full_record(reference, "demo_1_16", "fixmatch+b4", seed, *made_up(10 + seed, 0.5), test=made_up(20 + seed, 0.6))
    full_record(reference, "demo_1_8", "supervised+b4", 0, *made_up(30, 0.5), labeled=256, fraction=0.125,
                test=made_up(40, 0.7))
    full_record(reference, "demo_full", "fixmatch+valonly", 0, *made_up(50, 0.5), labeled=2048, fraction=1.0)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report:begin -->\n<!-- report:end -->\n")
    report.main(Console(file=io.StringIO()), tmp_path / "local", "reference", reference=reference,
                published_path=tmp_path / "none.yaml", readme=readme)
    text = readme.read_text()
    section = text.partition("#### demo: tagged variants on test")[2].partition("![")[0]
    assert section.startswith("\n\nEvaluated on test (20 images): the last and the best-on-val networks")
    header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
    assert header == "| method | demo_1_16 (128 labeled) | demo_1_8 (256 labeled) |"
    assert [row.split(" | ")[0] for row in rows] == ["| fixmatch+b4", "| supervised+b4"]
    test_miou = [float(stats.miou(*(c.sum(0) for c in made_up(20 + s, 0.6)))) for s in range(2)]
    assert f"{np.mean(test_miou):.2f} ± {np.std(test_miou, ddof=1):.2f} (n=2)" in rows[0]
    assert "valonly" not in text and "no test evaluation" not in section
    assert "![mIoU on test against labeled images, tagged variants](reference/miou_vs_labels_test.svg)" in text
    assert (reference / "miou_vs_labels_test.svg").stat().st_size > 1000


def test_per_seed_table_lists_every_run_behind_each_mean(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    for seed, last in ((2, 0.57), (0, 0.50), (1, 0.52)):
        fake_record("demo", "demo_1_16", "supervised", seed, last, last + 0.02, 128, 0.0625, root=tmp_path)
    fake_record("demo", "demo_1_16", "fixmatch", 1, 0.66, 0.67, 128, 0.0625, root=tmp_path)
    fake_record("demo", "demo_full", "supervised", 0, 0.8, 0.81, 2048, 1.0, root=tmp_path)
    fake_record("demo", "demo_1_16", "fixmatch", 0, 0.7, 0.75, 128, 0.0625, tag="tau0", root=tmp_path)
    report.main(Console(file=io.StringIO()), which="local")
    rows = (tmp_path / "per_seed.csv").read_text().splitlines()
    assert rows[0] == ("dataset,split,labeled,method,source,seed,evaluated_on,last,best,val_last,val_best,"
                       "last_iteration,diverged_at,hours")
    assert [row.split(",")[3:9] for row in rows[1:]] == [
        ["fixmatch", "local", "1", "val", "66.00", "67.00"], ["fixmatch+tau0", "local", "0", "val", "70.00", "75.00"],
        ["supervised", "local", "0", "val", "50.00", "52.00"], ["supervised", "local", "1", "val", "52.00", "54.00"],
        ["supervised", "local", "2", "val", "57.00", "59.00"], ["supervised", "local", "0", "val", "80.00", "81.00"]]
    table = [line for line in (tmp_path / "per_seed.md").read_text().splitlines() if line.startswith("| ")]
    assert table == ["| method | runs | demo_1_16 | demo_full |",
                     "| fixmatch | local | 1: 66.00 |  |",
                     "| supervised | local | 0: 50.00 · 1: 52.00 · 2: 57.00 | 0: 80.00 |",
                     "| fixmatch+tau0 | local | 0: 70.00 |  |"]


def _diverged(split: str, seed: int, at: int, root: Path) -> None:
    path = RunPaths.of("demo", split, "mkd", seed, None, root).record
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record_data(
        status="diverged", diverged={"iteration": at, "what": "non-finite loss (loss=nan)"}, split=split,
        method="mkd", seed=seed, completed_iterations=at, last_miou=0.99, best_miou=0.99)))


def test_diverged_seeds_are_counted_in_their_cell_and_never_averaged(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path))
    for seed, last in enumerate((0.70, 0.74, 0.72)):
        fake_record("demo", "demo_1_16", "supervised", seed, last, last, 128, 0.0625, root=tmp_path)
        fake_record("demo", "demo_1_8", "supervised", seed, last + 0.05, last + 0.05, 256, 0.125, root=tmp_path)
    fake_record("demo", "demo_1_16", "mkd", 0, 0.1088, 0.6313, 128, 0.0625, root=tmp_path)
    _diverged("demo_1_16", 2, 3240, tmp_path)
    _diverged("demo_1_16", 1, 3359, tmp_path)
    _diverged("demo_1_8", 0, 2100, tmp_path)
    runs, _ = load.load_runs(tmp_path)
    summary = statistics.summarise(runs).set_index(["split", "method"])
    mkd = summary.loc[("demo_1_16", "mkd")]
    assert mkd["seeds"] == 1 and mkd["diverged"] == 2 and mkd["diverged_at"] == "3240, 3359"
    assert math.isclose(mkd["last_mean"], 10.88)  # the diverged records' 99 % never enters the mean
    every = summary.loc[("demo_1_8", "mkd")]
    assert every["seeds"] == 0 and every["diverged"] == 1 and math.isnan(every["last_mean"])
    assert summary.loc[("demo_1_16", "supervised"), "diverged"] == 0
    report.main(Console(file=io.StringIO()), which="local", latex=True)
    text = (tmp_path / "summary.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| mkd |"))
    assert "10.88 (n=1)" in row and "2 of 3 seeds diverged (steps 3240, 3359), not in the mean" in row
    assert "mkd on demo_1_16 (local) (n=1, 2 diverged), mkd on demo_1_8 (local) (n=0, 1 diverged)" in text
    assert "diverged: 1 of 1 seed (step 2100)" in row
    seeds = (tmp_path / "per_seed.md").read_text()
    assert "| mkd | local | 0: 10.88 · 1: diverged at 3359 · 2: diverged at 3240 | 0: diverged at 2100 |" in seeds
    assert "10.88$^\\dagger$" in (tmp_path / "summary.tex").read_text()


def test_the_variants_legend_lies_below_its_panel_inside_the_figure() -> None:
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from benchmark import figures

    rows = [{"dataset": "demo", "split": split, "fraction": fraction, "method": f"fixmatch+variant{i}",
             "source": "reference", "last_mean": 50.0 + i, "last_std": 1.0}
            for i in range(14) for split, fraction in (("demo_1_16", 0.0625), ("demo_1_8", 0.125))]
    published = pd.DataFrame(columns=["dataset", "split", "method", "miou"])
    fig = figures.miou_vs_labels_figure(pd.DataFrame(rows), published, variants=True)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    below = ax.xaxis.get_tightbbox(renderer)
    assert len(ax.get_legend().get_texts()) == 14
    assert legend.y1 <= below.y0, "the legend must not cover the panel or its axis labels"
    assert legend.y0 >= 0 and legend.x0 >= 0 and legend.x1 <= fig.bbox.width, "the legend must fit in the figure"
    assert figures.miou_vs_labels_figure(pd.DataFrame(rows), published, variants=False) is None


def test_runs_with_a_test_list_are_reported_on_test_with_val_beside(tmp_path: Path) -> None:
    import numpy as np

    from benchmark import stats, tables
    from benchmark.protocol_checks import protocol_checks

    for seed in range(3):
        full_record(tmp_path, "demo_1_16", "supervised", seed, *made_up(seed, 0.6), test=made_up(20 + seed, 0.4))
        full_record(tmp_path, "demo_1_16", "fixmatch", seed, *made_up(10 + seed, 0.6), test=made_up(30 + seed, 0.7))
    full_record(tmp_path, "demo_1_16", "fixmatch", 3, *made_up(40, 0.6), extra={"val": 20})  # on val: another protocol
    runs, _ = load.load_runs(tmp_path)
    per_image = statistics.PerImage(runs)
    summary = statistics.attach_intervals(statistics.summarise(runs), per_image).set_index("method")
    test_miou = [float(stats.miou(*(c.sum(0) for c in made_up(20 + s, 0.4)))) for s in range(3)]
    val_miou = [float(stats.miou(*(c.sum(0) for c in made_up(s, 0.6)))) for s in range(3)]
    row = summary.loc["supervised"]
    assert row["evaluated_on"] == "test" and row["eval_images"] == 20
    assert np.isclose(row["last_mean"], np.mean(test_miou)) and np.isclose(row["val_last_mean"], np.mean(val_miou))
    weights = stats.resample_weights(20, seed=0)
    expected = stats.cell_interval([made_up(20 + s, 0.4) for s in range(3)], weights)
    assert (row["ci_low"], row["ci_high"]) == (expected.low, expected.high)
    gain = statistics.compare(runs, per_image, "fixmatch [" + runs[runs["evaluated_on"] == "test"]["protocol"].iloc[0] + "]",
                          "supervised")
    direct = stats.difference_interval([made_up(30 + s, 0.7) for s in range(3)], [made_up(20 + s, 0.4) for s in range(3)],
                                       weights)
    assert len(gain) == 1 and str(direct) in gain[0] and direct.low > 0
    assert "interval over test images" in gain[0]
    checks = protocol_checks(runs, statistics.summarise(runs))["demo"]
    assert any("fixmatch on demo_1_16 (local) (test)" in line for line in checks)
    markdown = tables.markdown(statistics.attach_intervals(statistics.summarise(runs), per_image))
    assert "Evaluated on test (20 images): the last and the best-on-val networks, val beside; val (20 images)." in markdown
    assert f"val {np.mean(val_miou):.2f}, best {np.mean(val_miou):.2f}" in markdown
    assert "best-on-val" in markdown
    on_val = [line for line in markdown.splitlines() if "on val: no test evaluation" in line]
    assert len(on_val) == 1 and "(n=1)" in on_val[0] and "best-on-val" not in on_val[0]
    alone = tables.markdown(statistics.attach_intervals(statistics.summarise(runs[runs["evaluated_on"] == "val"]),
                                                        per_image))
    assert "no test evaluation" not in alone


def test_a_diverged_seed_of_a_split_with_a_test_list_shares_its_cell(tmp_path: Path) -> None:
    for seed in range(2):
        full_record(tmp_path, "demo_1_16", "fixmatch", seed, *made_up(seed, 0.6), test=made_up(20 + seed, 0.5))
    full_record(tmp_path, "demo_1_16", "fixmatch", 2, *made_up(2, 0.6))
    stopped = RunPaths.of("demo", "demo_1_16", "fixmatch", 2, None, tmp_path).record
    record = json.loads(stopped.read_text())  # what the trainer writes: the test list named, never evaluated
    record.update(status="diverged", diverged={"iteration": 70, "what": "non-finite loss (loss=nan)"},
                  test={"list": "test.txt", "sha256": "t"}, completed_iterations=70)
    stopped.write_text(json.dumps(record))
    runs, _ = load.load_runs(tmp_path)
    assert runs["protocols"].max() == 1  # one protocol: the diverged seed is not split off as another
    row = statistics.attach_intervals(statistics.summarise(runs), statistics.PerImage(runs[runs["diverged_at"].isna()]))
    row = row.set_index("method").loc["fixmatch"]
    assert (row["seeds"], row["diverged"], row["diverged_at"], row["evaluated_on"]) == (2, 1, "70", "test")
    assert not math.isnan(row["ci_low"])  # the interval of the two finished seeds


def test_per_group_tables_give_each_group_its_own_miou_over_seeds(tmp_path: Path) -> None:
    import numpy as np

    from benchmark import stats

    names = [f"test/{'0001TP' if k < 12 else 'Seq05VD'}_{k:03d}.png" for k in range(20)]
    for seed in range(3):
        for method, skill in (("supervised", 0.4), ("fixmatch", 0.7)):
            full_record(tmp_path, "demo_1_16", method, seed, *made_up(seed, 0.6),
                        test=made_up(10 * (skill > 0.5) + seed, skill), test_names=names)
    report.main(Console(record=True, width=200), out=tmp_path, which="local", groups=("demo", "^[^_]+"))
    table = pd.read_csv(tmp_path / "per_group.csv").set_index(["method", "group"])
    for method, skill, base in (("supervised", 0.4, 0), ("fixmatch", 0.7, 10)):
        for group, part in (("0001TP", slice(0, 12)), ("Seq05VD", slice(12, 20))):
            scores = [float(stats.miou(*(c[part].sum(0) for c in made_up(base + s, skill)))) for s in range(3)]
            row = table.loc[(method, group)]
            assert row["images"] == (12 if group == "0001TP" else 8) and row["seeds"] == 3
            assert np.isclose(row["mean"], np.mean(scores), atol=0.01)
            assert np.isclose(row["std"], np.std(scores, ddof=1), atol=0.01)
    gain = table.loc[("fixmatch", "Seq05VD"), "mean"] - table.loc[("supervised", "Seq05VD"), "mean"]
    assert np.isclose(table.loc[("fixmatch", "Seq05VD"), "vs_supervised"], gain, atol=0.02) and gain > 20
    markdown = (tmp_path / "per_group.md").read_text()
    assert "| method | runs | 0001TP | Seq05VD |" in markdown and "12 im" in markdown and "`^[^_]+`" in markdown
    (tmp_path / "per_group.md").unlink()
    console = Console(record=True, width=200)
    report.main(console, out=tmp_path, which="local", groups=("camvid", "^[^_]+"))
    assert "no camvid runs with per-image counts" in console.export_text()
    assert not (tmp_path / "per_group.md").exists()
