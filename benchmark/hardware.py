"""The CPU this process runs on: what records and bench files name, and the one fact ``auto`` numerics
are decided by on a CPU, whether torch's kernels run bf16 natively.

bf16 autocast is fast on a CPU only where its kernels use bf16 instructions; where they do not (an
AVX2-only x86 CPU), oneDNN falls back to slow kernels and a bf16 forward costs many times a float32 one.
A default that is fast on one CPU only is not a default, so ``auto`` asks this module on every machine.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "avx_ne_convert")
"""x86 CPU flags (``/proc/cpuinfo``) of instructions that compute in bf16."""


LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS")
"""Environment variables that cap the instruction set or threads torch uses: a record names those set."""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as records name it."""

    model: str
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    cores: int
    """Cores this process may run on."""
    capability: str
    """torch's CPU capability (the vector instruction set its kernels were dispatched for)."""
    bf16_native: bool
    """Whether bf16 autocast runs on bf16 instructions (see ``bf16_native``)."""
    limits: dict[str, str]
    """Those of ``LIMITS`` set in the environment, with their values."""

    def as_dict(self) -> dict[str, object]:
        return {f"cpu_{key}" if key != "bf16_native" else key: value for key, value in asdict(self).items()}

    def line(self) -> str:
        """One line for a console or a table's protocol statement."""
        limits = "".join(f", {key}={value}" for key, value in self.limits.items())
        return (f"{self.model}, {self.cores} cores, torch CPU capability {self.capability}, "
                f"bf16 {'native' if self.bf16_native else 'not native'}{limits}")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _onednn_bf16() -> bool:
    """torch's answer: whether its oneDNN kernels support bf16 on this CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_native() -> bool:
    """Whether torch's CPU kernels compute bf16 natively: oneDNN reports bf16 support and, on an x86
    CPU whose flags can be read, one of ``BF16_FLAGS`` is among them (oneDNN also reports support on
    AVX-512 CPUs without bf16 instructions, where it emulates them)."""
    if not _onednn_bf16():
        return False
    flags = _cpuinfo().get("flags")
    if flags is None or platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    return any(flag in flags.split() for flag in BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    fields = _cpuinfo()
    model = fields.get("model name") or fields.get("Model name") or platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limits = {key: os.environ[key] for key in LIMITS if key in os.environ}
    return CpuInfo(model or "unknown", cores, torch.backends.cpu.get_cpu_capability(), bf16_native(), limits)
