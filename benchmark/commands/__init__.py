"""The commands of ``python -m benchmark``, one module each: its parser (``add``) and its handlers."""

from benchmark.commands import bench, datasets, gpu_check, methods, promote, report, run, splits, sweep, weights
from benchmark.commands import eval as eval_command

ALL = (run, sweep, report, eval_command, weights, promote, methods, datasets, splits, bench, gpu_check)
"""In the order ``--help`` lists them."""
