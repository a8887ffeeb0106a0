"""``bench --split``: the loader and the evaluation of one split on this machine, measured alone.

The loader's images per second with the preset's workers, against what each method's step consumes (the
step bench, ``bench_steps``, gives those); evaluation throughput per mode in float32 and bf16, the share
of it spent in the network's forwards, and the sliding window against the bare forwards of its windows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from benchmark.bench_steps import EVAL_NUMERICS
from benchmark.config import Resolved, dtype_name
from benchmark.runtime import Runtime
from benchmark.step_clock import sync


class DataBench:
    """The loader and the evaluation of one split, measured alone (``bench --split``)."""

    def __init__(self, split: Any, root: Path, resolved: Resolved, console: Console, batches: int = 20,
                 images: int = 32) -> None:
        self.split, self.root, self.console = split, root, console
        self.runtime = Runtime.of(resolved)
        self.batches, self.images = batches, images

    def __call__(self, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        loader = self.loader()
        table = Table(title=f"the loader alone, {self.split.name}, {self.runtime.cfg.data.workers} worker(s): "
                            f"{loader['images_per_second']:.0f} images/s")
        for column in ("method", "step consumes (img/s)", "loader / step"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for s in summaries:
            s["loader_ratio"] = loader["images_per_second"] / s["images_per_second"]
            table.add_row(s["label"], f"{s['images_per_second']:.1f}", f"{s['loader_ratio']:.1f}")
        self.console.print(table)
        evaluation = self.evaluation()
        table = Table(title=f"evaluation of {evaluation['images']} val images of {self.split.name}")
        for column in ("mode", "numerics", "images/s", "forward share"):
            table.add_column(column, justify="left" if column == "mode" else "right")
        for row in evaluation["modes"].values():
            table.add_row(row["mode"], dtype_name(row["eval_amp"]) + (" (auto)" if row["resolved"] else ""),
                          f"{row['images_per_second']:.1f}", f"{row['forward_share']:.2f}")
        self.console.print(table)
        self.console.print(f"sliding window: {evaluation['sliding_window_over_forwards']:.2f}x the time of its window "
                           "forwards")
        return {"loader": loader, "evaluation": evaluation}

    def loader(self) -> dict[str, Any]:
        """Images per second the preset's loaders deliver (labeled, unlabeled and mix streams together)."""
        from benchmark import distributed
        from benchmark.data.pipeline import train_streams

        cpu, data = torch.device("cpu"), self.runtime.cfg.data
        streams = train_streams(self.split, self.root, data, self.runtime.cfg.seed, distributed.info(), 0, cpu,
                                bool(self.split.unlabeled), bool(self.split.unlabeled))
        for _ in range(3):  # the workers start
            streams.next(cpu, False)
        start = time.perf_counter()
        for _ in range(self.batches):
            streams.next(cpu, False)
        seconds = time.perf_counter() - start
        per_batch = data.batch_size + (2 * data.unlabeled_batch_size if self.split.unlabeled else 0)
        return {"workers": data.workers, "batches": self.batches, "images_per_batch": per_batch,
                "images_per_second": self.batches * per_batch / seconds}

    def evaluation(self) -> dict[str, Any]:
        """Images per second of each evaluation mode (a freshly built network: the cost does not depend
        on the weights), the share of that time spent in the network's forwards, and the sliding window
        against the bare forwards of its windows."""
        from torch.utils.data import Subset

        from benchmark.data.pipeline import eval_dataset
        from benchmark.evaluate import sliding_window
        from benchmark.models import build_model

        cfg, runtime = self.runtime.cfg, self.runtime
        device, numerics = runtime.device, runtime.numerics
        network = build_model(cfg.model, cfg.data.num_classes)[0].to(device).eval()
        if numerics.channels_last:
            network = network.to(memory_format=torch.channels_last)
        timed = _TimedNetwork(network, device)
        val = eval_dataset(self.split.val, self.root, cfg.data)
        subset = Subset(val, range(min(self.images, len(val))))
        protocols = {mode: runtime.protocol(mode) for mode in ("original", "center_crop", "sliding_window")}
        modes: dict[str, dict[str, Any]] = {}
        for mode, protocol in protocols.items():
            for amp in EVAL_NUMERICS:
                evaluator = runtime.evaluator(subset, protocol, amp)
                evaluator.run(timed)  # warm-up
                timed.seconds = 0.0
                start = time.perf_counter()
                evaluator.run(timed)
                seconds = time.perf_counter() - start
                modes[f"{mode} {dtype_name(amp)}"] = {
                    "mode": mode, "eval_amp": amp, "resolved": amp == numerics.eval,
                    "images_per_second": len(subset) / seconds, "forward_share": timed.seconds / seconds}
        protocol = protocols["sliding_window"]
        image = torch.stack([val[i]["image"] for i in range(min(4, len(val)))
                             if val[i]["image"].shape == val[0]["image"].shape]).to(device).float().div_(255)
        if numerics.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        timed.seconds = 0.0
        with torch.no_grad(), numerics.autocast(device, "eval")():
            sync(device)
            start = time.perf_counter()
            sliding_window(timed, image, protocol.window, protocol.stride, cfg.data.num_classes)
            sync(device)
            whole = time.perf_counter() - start
        return {"images": len(subset), "modes": modes, "window": protocol.window, "stride": protocol.stride,
                "sliding_window_over_forwards": whole / timed.seconds}


class _TimedNetwork(nn.Module):
    """A network that adds the time of its forwards to ``seconds``."""

    def __init__(self, network: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.network, self.device, self.seconds = network, device, 0.0

    def forward(self, x: Tensor) -> Tensor:
        sync(self.device)
        start = time.perf_counter()
        out = self.network(x)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        return out
