"""The step contract: before_step and after_step run once per optimizer step whatever the number of
micro-batches, a non-finite step applies neither an optimizer step nor a teacher update."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from benchmark.method import Batch, Method, Step
from benchmark.models import SegOutput
from benchmark.step import Numerics, Stepper, build_method, build_optimizers
from helpers import resolve_tiny
from methods.mkd import MKD
from helpers import fixed_batch

CPU = torch.device("cpu")


class Counting(Method):
    """Supervised loss that counts the hooks the stepper calls."""

    uses_unlabeled = False

    @dataclass
    class Params:
        pass

    def __init__(self, ctx, params) -> None:
        super().__init__(ctx, params)
        self.model = ctx.build_model()
        self.calls: list[tuple[str, int]] = []

    def before_step(self, step: Step) -> None:
        self.calls.append(("before", step.iteration))

    def training_step(self, batch: Batch, step: Step) -> dict:
        self.calls.append(("micro", step.iteration))
        return {"loss": self.ctx.supervised_loss(self.model(batch.labeled.image), batch.labeled.mask)}

    def after_step(self, step: Step) -> None:
        self.calls.append(("after", step.iteration))


def stepper_for(cls: type[Method], accumulate: int, rollback: bool = False, **params: object) -> Stepper:
    resolved = resolve_tiny(cls, method=params)
    numerics = Numerics("off", False)
    method, _, _ = build_method(resolved, cls, CPU, numerics)
    return Stepper(method, build_optimizers(method, resolved.run), method.trainable(), numerics, CPU, seed=0,
                   total=100, accumulate=accumulate, rollback=rollback)


def nan_batch() -> Batch:
    batch = fixed_batch()
    batch.labeled.image[0, 0, 0, 0] = float("nan")
    return batch


def test_hooks_run_once_per_optimizer_step_and_after_step_only_when_it_was_taken() -> None:
    stepper = stepper_for(Counting, accumulate=3)
    batch = fixed_batch()
    _, finite = stepper(lambda device, channels_last: batch, 7)
    assert finite
    assert stepper.method.calls == [("before", 7), ("micro", 7), ("micro", 7), ("micro", 7), ("after", 7)]
    stepper.method.calls.clear()
    bad = nan_batch()
    _, finite = stepper(lambda device, channels_last: bad, 8)
    assert not finite
    assert stepper.method.calls == [("before", 8), ("micro", 8), ("micro", 8), ("micro", 8)]


def test_mkd_teachers_move_once_per_optimizer_step_with_accumulation() -> None:
    stepper = stepper_for(MKD, accumulate=2, ema_end=0.6)
    method = stepper.method
    with torch.no_grad():  # students apart from their teachers, so that an update is visible
        for p in method.student1.parameters():
            p.add_(0.05)
    teacher = [p.clone() for p in method.teacher1.parameters()]
    student = [p.clone() for p in method.student1.parameters()]
    batch = fixed_batch()
    _, finite = stepper(lambda device, channels_last: batch, 5)  # m = min(1 - 1/6, 0.6) = 0.6
    assert finite
    for old_t, old_s, new_t in zip(teacher, student, method.teacher1.parameters()):
        # one update at 0.6 before the micro-batches (two would give 0.36 * old_t + 0.64 * old_s)
        assert torch.allclose(new_t, 0.6 * old_t + 0.4 * old_s, atol=1e-6)
    moved = [not torch.equal(a, b) for a, b in zip(student, method.student1.parameters())]
    assert any(moved)  # the optimizer step did happen, after the teacher update


def test_a_skipped_step_leaves_every_tensor_of_the_method_as_it_was() -> None:
    stepper = stepper_for(MKD, accumulate=2, rollback=True)
    method = stepper.method
    with torch.no_grad():
        for p in method.student1.parameters():
            p.add_(0.05)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    bad = nan_batch()
    _, finite = stepper(lambda device, channels_last: bad, 5)
    assert not finite
    after = method.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert changed == []  # teachers, students, BatchNorm statistics and MKD's feature statistics
    assert all(not state for optimizer in stepper.optimizers.values() for state in optimizer.state.values())


def test_without_rollback_a_skipped_step_still_takes_no_optimizer_step() -> None:
    stepper = stepper_for(Counting, accumulate=1)
    weights = [p.clone() for p in stepper.method.model.parameters()]
    bad = nan_batch()
    _, finite = stepper(lambda device, channels_last: bad, 0)
    assert not finite
    assert all(torch.equal(a, b) for a, b in zip(weights, stepper.method.model.parameters()))


def test_auto_numerics_follow_the_cpu_bf16_answer_and_fp16_is_refused_on_cpu(monkeypatch) -> None:
    from benchmark import hardware
    from benchmark.config import TrainerConfig
    from benchmark.errors import UserError

    for native, evaluation in ((True, "bf16"), (False, "off")):
        monkeypatch.setattr(hardware, "bf16_native", lambda native=native: native)
        assert Numerics.resolve(TrainerConfig(), CPU) == Numerics("off", True, teacher="off", eval=evaluation)
        assert Numerics.resolve(TrainerConfig(), torch.device("cuda", 0)) == Numerics("bf16", True, "bf16", "bf16")
        assert Numerics.resolve(TrainerConfig(amp="bf16", eval_amp="bf16", channels_last="off"), CPU) == \
            Numerics("bf16", False, teacher="bf16", eval="bf16")  # what is asked for is what runs
    with pytest.raises(UserError, match="teacher_amp = fp16 needs CUDA"):
        Numerics.resolve(TrainerConfig(teacher_amp="fp16"), CPU)


def test_bf16_is_native_only_where_onednn_supports_it_and_an_x86_cpu_has_bf16_instructions(monkeypatch) -> None:
    from benchmark import hardware

    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    cases = [(False, "fpu avx2 avx512f avx512_bf16", False),  # oneDNN says no: never native
             (True, "fpu avx2 avx512f avx512bw", False),  # AVX-512 without bf16 instructions: emulated
             (True, "fpu avx2 avx512f avx512_bf16", True), (True, "fpu avx2 amx_bf16", True)]
    for onednn, flags, native in cases:
        monkeypatch.setattr(hardware, "_onednn_bf16", lambda onednn=onednn: onednn)
        monkeypatch.setattr(hardware, "_cpuinfo", lambda flags=flags: {"model name": "Some CPU", "flags": flags})
        assert hardware.bf16_native() is native, flags
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: {})  # flags unreadable: torch's answer decides
    assert hardware.bf16_native() is True
    info = hardware.cpu_info()
    assert info.cores >= 1 and info.capability == torch.backends.cpu.get_cpu_capability() and info.model
    assert set(info.as_dict()) == {"cpu_model", "cpu_cores", "cpu_capability", "bf16_native", "cpu_limits"}


class Probe(torch.nn.Module):
    """Records the grad mode, training mode and autocast state of its calls; returns a NamedTuple."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.seen: list[tuple[bool, bool, bool]] = []

    def forward(self, x: torch.Tensor, features: bool = False):
        self.seen.append((torch.is_grad_enabled(), self.training, torch.is_autocast_enabled("cpu")))
        y = self.conv(x)
        return SegOutput(y, y[:, :1], y, [y, x.long()]) if features else y


def test_no_grad_forward_runs_in_the_teacher_numerics_and_returns_float32() -> None:
    from benchmark.step import build_context

    resolved = resolve_tiny(Counting)
    ctx = build_context(resolved.run, CPU, Numerics("off", False, teacher="bf16"), [])
    probe = Probe().train()
    x = torch.rand(2, 3, 8, 8)
    out = ctx.no_grad_forward(probe, x, features=True)
    assert probe.seen == [(False, False, True)] and probe.training
    assert isinstance(out, SegOutput) and out.logits.dtype == torch.float32 and not out.logits.requires_grad
    assert out.stages[0].dtype == torch.float32 and out.stages[1].dtype == torch.int64
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = probe.conv(x).float()
    assert torch.equal(out.logits, expected) and not torch.equal(out.logits, probe.conv(x))
    ctx.no_grad_forward(probe, x, eval_mode=False)
    assert probe.seen[-1] == (False, True, True)
    plain = build_context(resolved.run, CPU, Numerics("off", False, teacher="off"), [])
    assert torch.equal(plain.no_grad_forward(probe, x), probe.conv(x).detach()) and not probe.seen[-1][2]
