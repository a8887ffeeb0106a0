"""The evaluator: confusion matrix and IoU against hand computations; inference modes."""

from __future__ import annotations

import math

import torch
from torch import nn

from benchmark.evaluate import Evaluator, Protocol, confusion_matrix, iou_from_confusion, sliding_window


def test_confusion_matrix_counts_by_hand() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 2]])
    # pairs (true, pred) without the ignored pixel: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (1,2)
    expected = torch.tensor([[1, 1, 0], [0, 2, 1], [1, 0, 1]])
    assert torch.equal(confusion_matrix(pred, target, 3, 255), expected)


def test_iou_from_hand_computed_confusion() -> None:
    confusion = [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    miou, iou = iou_from_confusion(confusion)
    # class 0: tp 1, fp 1 (col) , fn 1 (row) -> 1/3; class 1: 2/(2+1+1) = 1/2; class 2: 1/(1+1+1) = 1/3
    assert iou == [1 / 3, 1 / 2, 1 / 3]
    assert math.isclose(miou, (1 / 3 + 1 / 2 + 1 / 3) / 3)


def test_absent_class_is_left_out_of_the_mean() -> None:
    miou, iou = iou_from_confusion([[4, 0, 0], [2, 2, 0], [0, 0, 0]])
    assert math.isnan(iou[2])
    assert iou[:2] == [4 / 6, 2 / 4] and math.isclose(miou, (4 / 6 + 2 / 4) / 2)


class PixelModel(nn.Module):
    """A model whose output at a pixel depends on that pixel alone (1x1 convolution)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 3


def test_sliding_window_equals_full_image_for_a_context_free_model() -> None:
    model = PixelModel()
    image = torch.rand(2, 3, 37, 53)
    full = model(image).softmax(1)
    for window, stride in ((16, 11), (20, 20), (64, 10)):
        probs = sliding_window(model, image, window, stride, num_classes=5, chunk=3)
        assert torch.allclose(probs, full, atol=1e-6)


class ValSet(torch.utils.data.Dataset):
    def __init__(self) -> None:
        torch.manual_seed(1)
        self.items = [{"image": (torch.rand(3, 30, 40) * 255).to(torch.uint8),
                       "mask": torch.randint(0, 5, (30, 40))} for _ in range(5)]
        self.items.append({"image": (torch.rand(3, 24, 24) * 255).to(torch.uint8),
                           "mask": torch.randint(0, 5, (24, 24))})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def test_evaluator_modes_agree_for_a_context_free_model_and_match_a_direct_count() -> None:
    model, data = PixelModel(), ValSet()
    direct = torch.zeros(5, 5, dtype=torch.int64)
    for item in data:
        pred = model(item["image"].float().div(255)[None]).argmax(1)[0]
        direct += confusion_matrix(pred, item["mask"], 5, 255)
    for protocol in (Protocol("original", 16, 16), Protocol("sliding_window", 16, 10)):
        result = Evaluator(data, protocol, 5, 255, torch.device("cpu"), batch_size=4).run(model)
        assert (result.confusion == direct.numpy()).all()
        assert math.isclose(result.miou, iou_from_confusion(direct)[0])


def test_center_crop_evaluates_only_the_centre() -> None:
    model, data = PixelModel(), ValSet()
    result = Evaluator(data, Protocol("center_crop", 10, 10), 5, 255, torch.device("cpu")).run(model)
    assert result.confusion.sum() == 6 * 10 * 10


def test_per_image_counts_are_each_images_own_in_val_order_and_sum_to_the_dataset() -> None:
    model, data = PixelModel(), ValSet()
    data.items.insert(2, data.items.pop())  # the odd-sized image in the middle of a batch
    data.items[0]["mask"][:5] = 255
    result = Evaluator(data, Protocol("original", 16, 16), 5, 255, torch.device("cpu"), batch_size=4).run(model)
    for k, item in enumerate(data):
        pred = model(item["image"].float().div(255)[None]).argmax(1)[0]
        own = confusion_matrix(pred, item["mask"], 5, 255).numpy()
        assert (result.intersection[k] == own.diagonal()).all()
        assert (result.union[k] == own.sum(0) + own.sum(1) - own.diagonal()).all()
    total = result.confusion
    assert (result.intersection.sum(0) == total.diagonal()).all()
    assert (result.union.sum(0) == total.sum(0) + total.sum(1) - total.diagonal()).all()
