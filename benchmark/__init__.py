"""Reference benchmark suite for semi-supervised semantic segmentation.

The harness (data, model, trainer, evaluator, records, report) lives here; the algorithms live in the
top-level ``methods`` package, one file per method.
"""

from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package runs from: ``splits/`` and ``results/`` are found here."""
