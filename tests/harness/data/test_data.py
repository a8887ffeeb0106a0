"""The demo data set, split files, train-time geometry and device-side augmentation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from benchmark.config import AugmentConfig
from benchmark.data import demo, splits
from benchmark.data.augment import StrongAugment, cutmix_boxes, gaussian_blur, shift_hue
from benchmark.migrate_records import FORMER_DEFAULTS
from benchmark.data.sampling import StreamSampler
from benchmark.data.transforms import Geometry
from benchmark.errors import UserError


def test_demo_is_deterministic_by_seed(tmp_path) -> None:
    spec = demo.DemoSpec(seed=3, train=4, val=2, size=48)
    demo.generate(tmp_path / "a", spec)
    demo.generate(tmp_path / "b", spec)
    demo.generate(tmp_path / "c", demo.DemoSpec(seed=4, train=4, val=2, size=48))
    for split, count in (("train", 4), ("val", 2)):
        for i in range(count):
            for rel in (demo.image_path(split, i), demo.mask_path(split, i)):
                assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / demo.image_path("train", 0)).read_bytes() != \
        (tmp_path / "c" / demo.image_path("train", 0)).read_bytes()
    # image i depends on (seed, split, i) only, not on how many images are generated
    image, mask = demo.render(demo.DemoSpec(seed=3, size=48), "train", 2)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / demo.image_path("train", 2))), image)


def test_demo_class_is_shape_not_colour() -> None:
    """Every class appears in many colours: the mean colour of a class tells nothing."""
    colours: dict[int, list[np.ndarray]] = {}
    for i in range(120):
        image, mask = demo.render(demo.DemoSpec(size=64), "train", i)
        for label in range(1, 7):
            if (mask == label).sum() > 30:
                colours.setdefault(label, []).append(image[mask == label].mean(0))
    spreads = [np.std(np.stack(c), axis=0).mean() for c in colours.values()]
    assert len(colours) == 6 and min(spreads) > 40  # uniform colours in [0, 255] have std ~74


def test_geometry_pads_with_ignore_and_marks_padding() -> None:
    geometry = Geometry(crop=(64, 64), scale_range=(0.25, 0.25), ignore_index=255)
    image = torch.full((3, 100, 100), 200, dtype=torch.uint8)
    mask = torch.ones(100, 100, dtype=torch.long)
    img, target = geometry(image, mask, seed=7)
    assert img.shape == (3, 64, 64) and target.shape == (64, 64)
    assert ((target == 255) == (img.sum(0) == 0)).all()  # padded image pixels are exactly the ignored ones
    assert (target == 1).sum() == 25 * 25
    _, pad = geometry(image, None, seed=7)
    assert pad.dtype == torch.bool and torch.equal(pad, target == 255)


def test_geometry_is_a_function_of_the_seed() -> None:
    geometry = Geometry(crop=(32, 40), scale_range=(0.5, 2.0))
    image = torch.randint(0, 255, (3, 50, 60), dtype=torch.uint8)
    mask = torch.randint(0, 5, (50, 60))
    first = geometry(image, mask, 11)
    assert all(torch.equal(a, b) for a, b in zip(first, geometry(image, mask, 11)))
    assert not torch.equal(first[0], geometry(image, mask, 12)[0])


def test_stream_sampler_resumes_and_splits_batches_between_processes() -> None:
    whole = StreamSampler(10, seed=0, stream=1, global_batch=4)
    stream = iter(whole)
    positions = [next(stream) for _ in range(40)]
    resumed = iter(StreamSampler(10, seed=0, stream=1, global_batch=4, start_batch=3))
    assert [next(resumed) for _ in range(8)] == positions[12:20]
    ranks = [iter(StreamSampler(10, 0, 1, 4, rank=r, world=2)) for r in range(2)]
    merged = [item for _ in range(5) for r in ranks for item in (next(r), next(r))]
    assert merged == positions[:20]
    epoch = sorted(index for index, _ in positions[:10])
    assert epoch == list(range(10))  # each epoch is a permutation


def test_hue_and_blur_match_torchvision() -> None:
    x = torch.rand(3, 3, 20, 24)
    shifts = torch.tensor([0.1, -0.25, 0.4])
    reference = torch.stack([TF.adjust_hue(x[i], shifts[i].item()) for i in range(3)])
    assert torch.allclose(shift_hue(x, shifts), reference, atol=1e-5)
    sigmas = torch.tensor([0.3, 1.0, 2.0])
    reference = torch.stack([TF.gaussian_blur(x[i], [13, 13], [sigmas[i].item()] * 2) for i in range(3)])
    assert torch.allclose(gaussian_blur(x, sigmas, 6), reference, atol=1e-5)


def test_strong_augment_is_per_sample_and_seeded() -> None:
    x = torch.rand(64, 3, 16, 16)
    same = x[:1].expand(64, -1, -1, -1).contiguous()
    strong = StrongAugment(AugmentConfig())
    out = strong(same, torch.Generator().manual_seed(0))
    assert torch.equal(out, strong(same, torch.Generator().manual_seed(0)))
    distinct = {tuple(o.flatten()[:8].tolist()) for o in out}
    assert len(distinct) > 40  # copies of one image get different augmentations
    assert out.min() >= 0 and out.max() <= 1


def test_cutmix_boxes_probability_area_and_inside_the_crop() -> None:
    cfg = AugmentConfig(cutmix_p=0.5, cutmix_area=(0.1, 0.1), cutmix_aspect=(1.0, 1.0))
    boxes = cutmix_boxes(4000, 40, 40, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    used = boxes.flatten(1).any(1)
    assert abs(used.float().mean().item() - 0.5) < 0.03
    areas = boxes.flatten(1).sum(1)[used]
    assert (areas == 12 * 12).all()  # floor(sqrt(0.1 * 1600)) = 12


def test_split_files_refuse_paths_outside_the_root() -> None:
    with pytest.raises(UserError, match="not inside the dataset root"):
        splits.parse_lines("../../etc/passwd masks/a.png\n", "labeled.txt", need_mask=True)
    with pytest.raises(UserError, match="not inside the dataset root"):
        splits.parse_lines("/etc/passwd\n", "unlabeled.txt", need_mask=False)
    with pytest.raises(UserError, match="needs '<image> <mask>'"):
        splits.parse_lines("a.png\n", "labeled.txt", need_mask=True)


def test_nested_draw_is_nested_disjoint_and_seeded() -> None:
    pool = [(f"i{k}.png", f"m{k}.png") for k in range(100)]
    drawn = splits.nested_draw(pool, {"a": 6, "b": 12, "c": 25}, seed=5)
    assert {s for s, _ in drawn["a"][0]} < {s for s, _ in drawn["b"][0]} < {s for s, _ in drawn["c"][0]}
    for labeled, unlabeled in drawn.values():
        assert not set(labeled) & set(unlabeled) and len(labeled) + len(unlabeled) == 100
    assert drawn == splits.nested_draw(pool, {"a": 6, "b": 12, "c": 25}, seed=5)
    assert drawn["a"] != splits.nested_draw(pool, {"a": 6}, seed=6)["a"]


def test_stratified_draw_keeps_every_group_at_its_share_in_every_nested_split() -> None:
    sizes = {"0001TP": 10, "0006R0": 30, "0016E5": 60}
    pool = [(f"train/{drive}_{k:05d}.png", f"trainannot/{drive}_{k:05d}.png") for drive, n in sizes.items()
            for k in range(n)]
    strata = splits.strata_of([image for image, _ in pool], "^[^_]+")
    assert strata == [drive for drive, n in sizes.items() for _ in range(n)]
    order = splits.draw_order(len(pool), 7, strata)
    assert sorted(order) == list(range(100))
    for count in range(1, 101):
        drawn = Counter(strata[i] for i in order[:count])
        for drive, n in sizes.items():
            assert abs(drawn[drive] - count * n / 100) <= 1, (count, drive, drawn)
    drawn = splits.nested_draw(pool, {"a": 3, "b": 10, "c": 50}, seed=7, strata=strata)
    assert set(drawn["a"][0]) < set(drawn["b"][0]) < set(drawn["c"][0])
    assert Counter(name.split("/")[1][:6] for name, _ in drawn["b"][0]) == {"0001TP": 1, "0006R0": 3, "0016E5": 6}
    assert drawn["a"][0] != splits.nested_draw(pool, {"a": 3}, seed=8, strata=strata)["a"][0]
    assert splits.strata_of(["train/0001TP_00000.png"], r"_(\d{3})")[0] == "000"


def test_strata_that_do_not_read_or_do_not_match_say_so() -> None:
    names = ["train/a_1.png", "train/b.png"]
    with pytest.raises(UserError, match="cannot read --strata .* as a regular expression"):
        splits.strata_of(names, "([")
    with pytest.raises(UserError, match="--groups '.*' matches nothing in the file name of train/b.png"):
        splits.strata_of(names, "^[^_]+_", "--groups")


def test_structure_problems_are_all_reported(env) -> None:
    split = splits.load("demo_1_4")
    split.labeled.append(split.labeled[0])
    split.unlabeled.append(split.labeled[1])
    problems = splits.structure_problems(split)
    assert any("labeled: 1 duplicate" in p for p in problems)
    assert any("share 1 images" in p for p in problems)


def test_a_changed_split_file_is_detected(env) -> None:
    path = env / "splits" / "demo" / "demo_1_4" / "labeled.txt"
    path.write_text(path.read_text() + "images/train/00031.png masks/train/00031.png\n")
    with pytest.raises(UserError, match="sha256 mismatch"):
        splits.load("demo_1_4")


def test_unknown_split_says_how_to_get_it(env) -> None:
    with pytest.raises(UserError, match="splits import --from .* --dataset voc"):
        splits.load("voc_1_16")
    with pytest.raises(UserError, match="splits make --dataset camvid"):
        splits.load("camvid_1_8")


def test_augmentations_keep_the_channels_last_format_of_their_input() -> None:
    from benchmark.config import AugmentConfig
    from benchmark.data.augment import StrongAugment
    from methods.common.augment import photometric_distortion

    x = torch.rand(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    for augment in (StrongAugment(AugmentConfig()), photometric_distortion):
        out = augment(x, torch.Generator().manual_seed(0))
        same = augment(x.contiguous(), torch.Generator().manual_seed(0))
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out, same)


def test_demo_variants_change_only_what_they_name_and_a_folder_keeps_its_options(tmp_path, capsys) -> None:
    from benchmark import cli

    assert demo.spec_with(["max_distractors=0", "radius_max=0.4"]) == demo.DemoSpec(max_distractors=0,
                                                                                    radius_max=0.4)
    with pytest.raises(UserError, match="not KEY=VALUE with KEY one of seed, train"):
        demo.spec_with(["distractors=0"])
    with pytest.raises(UserError, match="max_objects=two: not a number of type int"):
        demo.spec_with(["max_objects=two"])
    with pytest.raises(UserError, match="max_objects=0: must be at least 1"):
        demo.spec_with(["max_objects=0"])
    with pytest.raises(UserError, match="radius_min=0.5 is above radius_max=0.32"):
        demo.spec_with(["radius_min=0.5"])
    plain = demo.DemoSpec(train=4, val=2, size=48, max_clutter=0, max_distractors=0, max_noise=0.01, max_blur=0)
    image, mask = demo.render(plain, "train", 0)
    assert len(np.unique(mask)) > 1 and mask.shape == (48, 48)
    root = tmp_path / "variant"
    assert cli.main(["datasets", "demo", str(root), "--set", "train=4", "--set", "val=2", "--set", "size=48",
                     "--set", "max_distractors=2"]) == 0
    assert "--data-root" in capsys.readouterr().out
    assert demo.read_manifest(root)["max_distractors"] == 2 and demo.read_manifest(root)["max_objects"] == 3
    assert demo.ensure(root) == root  # any demo data is accepted where no options are named
    assert cli.main(["datasets", "demo", str(root), "--set", "train=4", "--set", "val=2", "--set", "size=48"]) == 2
    assert "other options (max_distractors=2 (not 0))" in capsys.readouterr().err
    default, former = demo.default_root(), demo.default_root(FORMER_DEFAULTS)
    assert default.name.startswith("demo-v2-seed0-") and default != former  # a change of defaults is a new folder
