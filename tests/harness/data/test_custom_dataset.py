"""Your own data set in one YAML file: registration, splits, training, colour masks and bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from benchmark import cli
from benchmark.data import custom
from benchmark.data.datasets import colour_labels
from benchmark.errors import UserError


@pytest.fixture()
def example(env: Path) -> Path:
    """The example data set of ``datasets example`` (24 train + 6 val scenes), registered."""
    custom._loaded.clear()
    path = custom.write_example(env / "mine", train=24, val=6)
    assert cli.main(["datasets", "add", str(path)]) == 0
    return path


def test_a_custom_data_set_gets_splits_and_trains_for_a_few_steps(example, env, tiny_config, capsys) -> None:
    assert cli.main(["splits", "make", "--dataset", "shapes", "--ratios", "1/4"]) == 0
    assert "shapes_1_4: 6 labeled, 18 unlabeled" in capsys.readouterr().out
    assert cli.main(["splits", "check", "shapes_1_4"]) == 0
    assert "6 labeled, 18 unlabeled, 6 val" in capsys.readouterr().out
    assert cli.main(["run", "--method", "fixmatch", "--split", "shapes_1_4", "--config", str(tiny_config),
                     "--quiet"]) == 0
    record = json.loads((env / "results" / "runs" / "shapes" / "shapes_1_4" / "fixmatch" / "seed0"
                         / "record.json").read_text())
    assert record["status"] == "finished" and record["completed_iterations"] == 4
    assert record["dataset"] == "shapes" and record["preset"] == "shapes" and record["val"] == 6
    assert record["class_names"][1] == "disc" and 0 <= record["last_miou"] <= 1
    config = yaml.safe_load((env / "results" / "runs" / "shapes" / "shapes_1_4" / "fixmatch" / "seed0"
                             / "config.yaml").read_text())
    assert config["data"]["mask_colors"][1] == list(custom.EXAMPLE_PALETTE[1])
    assert config["data"]["root"] == str(example.parent.resolve())


def test_a_run_on_a_data_set_with_a_test_list_reports_its_last_and_best_networks_on_test(env, tiny_config, capsys,
                                                                                        monkeypatch) -> None:
    from benchmark import stats
    from benchmark.records import RunPaths, read_per_image
    from benchmark.trainer import Trainer

    evaluate = Trainer._evaluate
    named = []

    def first_is_best(self, method, evaluator, state, lr, progress) -> None:
        """The first evaluation stays the best, so that the best network (best.pt) is not the last."""
        evaluate(self, method, evaluator, state, lr, progress)
        state.best["miou"] = 2.0
        named.append(dict(self.test))  # what the record written while training says of the test list

    monkeypatch.setattr(Trainer, "_evaluate", first_is_best)

    custom._loaded.clear()
    path = custom.write_example(env / "mine", train=24, val=6, test=5)
    assert cli.main(["datasets", "add", str(path)]) == 0
    assert cli.main(["splits", "make", "--dataset", "shapes", "--ratios", "1/4"]) == 0
    assert "test: 5 images (written)" in capsys.readouterr().out
    assert cli.main(["splits", "check", "shapes_1_4"]) == 0
    assert "6 labeled, 18 unlabeled, 6 val, 5 test" in capsys.readouterr().out
    assert cli.main(["run", "--method", "supervised", "--split", "shapes_1_4", "--config", str(tiny_config),
                     "--set", "schedule.iters=6", "--set", "schedule.eval_every=2", "--quiet"]) == 0
    assert "; test (5 images) last " in capsys.readouterr().out
    paths = RunPaths.of("shapes", "shapes_1_4", "supervised", 0)
    record = json.loads(paths.record.read_text())
    test = record["test"]
    assert record["status"] == "finished" and test["images"] == 5 and test["list"] == "test.txt"
    assert test["last_iteration"] == 6 and test["best_iteration"] == record["best_iteration"] == 2
    assert named[0] == {"list": "test.txt", "sha256": test["sha256"]}  # named from the start, as a diverged run's
    counts = read_per_image(paths.test_per_image)
    assert counts["images"].tolist() == [f"test/photos/scene{i:04d}.jpg" for i in range(5)]
    for which in ("last", "best"):
        from_counts = stats.miou(counts[f"{which}_intersection"].sum(0), counts[f"{which}_union"].sum(0)) / 100
        assert np.isclose(from_counts, test[f"{which}_miou"])
    only_test = env / "test-only"  # a root with the listed files alone: no training or val folders
    shutil.copytree(path.parent / "test", only_test / "test")
    listed = env / "splits" / "shapes" / "test.txt"
    for which in ("last", "best"):
        assert cli.main(["eval", str(paths.folder), "--list", str(listed), "--data-root", str(only_test),
                         "--checkpoint", which]) == 0
        again = json.loads(next((paths.folder / "evals").glob(f"*-{which}-original-*.json")).read_text())
        assert again["miou"] == test[f"{which}_miou"] and again["images"] == 5


def test_colour_masks_decode_to_the_palettes_class_ids() -> None:
    colours = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    labels = np.array([[0, 1, 2], [2, 1, 9]])
    table = np.array([*colours, (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (7, 7, 7)],
                     dtype=np.uint8)
    decoded, unknown = colour_labels(table[labels], colours, [(7, 7, 7)], 255)
    assert decoded.tolist() == [[0, 1, 2], [2, 1, 255]] and unknown == []
    rgb = table[labels].copy()
    rgb[0, 0] = (1, 2, 3)
    _, unknown = colour_labels(rgb, colours, [(7, 7, 7)], 255)
    assert unknown == [(1, 2, 3)]


def test_the_examples_masks_read_back_as_the_demo_scenes_labels(example) -> None:
    from benchmark.config import resolve
    from benchmark.data import demo
    from benchmark.data.datasets import PairReader

    data = resolve("shapes").run.data
    reader = PairReader(example.parent, [("photos/scene0003.jpg", "labels/scene0003.png")], data)
    assert np.array_equal(reader.mask(0), demo.render(demo.DemoSpec(seed=7), "train", 3)[1])


def test_a_data_set_file_works_for_one_command_without_registration(env, tiny_config, capsys) -> None:
    custom._loaded.clear()
    path = custom.write_example(env / "mine", train=16, val=4)
    assert cli.main(["splits", "make", "--dataset", "shapes", "--ratios", "1/4"]) == 2
    assert "unknown data set 'shapes'" in capsys.readouterr().err
    assert cli.main(["splits", "make", "--dataset", "shapes", "--ratios", "1/4", "--dataset-file", str(path)]) == 0
    custom._loaded.clear()
    assert cli.main(["run", "--method", "supervised", "--split", "shapes_1_4", "--dataset-file", str(path),
                     "--config", str(tiny_config), "--quiet"]) == 0


def test_a_held_out_val_set_is_drawn_when_the_file_names_none(env) -> None:
    path = custom.write_example(env / "mine", train=20, val=1)
    spec = yaml.safe_load(path.read_text())
    for key in ("val_images", "val_masks"):
        del spec[key]
    spec["val_fraction"] = 0.25
    path.write_text(yaml.safe_dump(spec))
    pool, val, source = custom.read(path).pool_and_val(path.parent, seed=3)
    assert len(pool) == 15 and len(val) == 5 and not {i for i, _ in pool} & {i for i, _ in val}
    assert "5 of 20 images held out as val (seed 3" in source
    assert custom.read(path).pool_and_val(path.parent, seed=3)[1] == val


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "My Data"}, "lower-case letters and digits"),
    ({"name": "camvid"}, "is a built-in data set"),
    ({"palette": [[0, 0, 0]]}, "one colour per class: 1 colours for 7 classes"),
    ({"train_list": "train.txt"}, "either images and masks (folders) or train_list"),
    ({"base_preset": "imagenet"}, "base_preset 'imagenet' is not one of"),
    ({"colour": "red"}, "unknown config key 'colour'"),
    ({"mask_format": "index"}, "palette and ignore_colors are for mask_format: palette"),
    ({"val_masks": None}, "val_images and val_masks go together"),
])
def test_bad_data_set_files_end_in_one_line_naming_the_file(env, capsys, change, message) -> None:
    path = custom.write_example(env / "mine", train=2, val=1)
    spec = {**yaml.safe_load(path.read_text()), **change}
    path.write_text(yaml.safe_dump(spec))
    assert cli.main(["datasets", "add", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path.resolve()) in err.replace("\n", "") and "Traceback" not in err


def test_a_mask_with_a_colour_outside_the_palette_is_named(example, env, capsys) -> None:
    assert cli.main(["splits", "make", "--dataset", "shapes", "--ratios", "1/4"]) == 0
    mask = example.parent / "labels" / "scene0000.png"
    rgb = np.asarray(Image.open(mask)).copy()
    rgb[0, 0] = (9, 9, 9)
    Image.fromarray(rgb).save(mask)
    assert cli.main(["splits", "check", "shapes_1_4"]) == 1
    out = capsys.readouterr().out.replace("\n", "")
    assert "mask colours unknown: 1 files, e.g. " in out and "scene0000.png" in out
    from benchmark.config import resolve
    from benchmark.data.datasets import PairReader

    reader = PairReader(example.parent, [("photos/scene0000.jpg", "labels/scene0000.png")], resolve("shapes").run.data)
    with pytest.raises(UserError, match=r"scene0000.png holds colours \[\(9, 9, 9\)\] that are neither"):
        reader.mask(0)


def test_a_missing_image_folder_is_named_with_the_expected_layout(example, env, capsys) -> None:
    (example.parent / "photos").rename(example.parent / "pictures")
    with pytest.raises(UserError, match="lacks photos"):
        from benchmark.data import roots

        roots.resolve("shapes", None, None)
