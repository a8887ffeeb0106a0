"""The method contract (benchmark/method.py), checked on every registered method: a new method gets
these tests for free."""

from __future__ import annotations

import copy
import dataclasses
import io
import math

import pytest
import torch
from rich.console import Console
from torch import nn

from benchmark import cli
from benchmark.commands import methods as methods_command
from benchmark import method as registry
from benchmark.method import Method, check_step, unwrap
from benchmark.step import Numerics, Stepper, build_method, build_optimizers
from helpers import resolve_tiny
from helpers import fixed_batch

METHODS = list(registry.available())
CPU = torch.device("cpu")
NUMERICS = Numerics("off", False)


def built(name: str, seed: int = 0) -> tuple[Method, dict[str, torch.optim.Optimizer]]:
    cls = registry.get(name)
    resolved = resolve_tiny(cls, seed=seed)
    method, _, _ = build_method(resolved, cls, CPU, NUMERICS)
    return method, build_optimizers(method, resolved.run)


def stepper(method: Method, optimizers: dict, wrapped: dict[str, nn.Module] | None = None) -> Stepper:
    return Stepper(method, optimizers, wrapped or method.trainable(), NUMERICS, CPU, seed=0, total=10)


def step(run: Stepper, iteration: int) -> dict[str, float]:
    batch = fixed_batch()
    parts, finite = run(lambda device, channels_last: batch, iteration)
    assert finite
    return parts


def same_state(a: Method, b: Method) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


@pytest.mark.parametrize("name", METHODS)
def test_contract_build_names_trainable_networks_and_an_evaluated_one(name: str) -> None:
    method, optimizers = built(name)
    trainable = method.trainable()
    assert trainable and set(optimizers) == set(trainable)
    for attribute, network in trainable.items():
        assert getattr(method, attribute) is network and method.network(attribute) is network
        assert all(p.requires_grad for p in network.parameters())
    evaluated = method.eval_model().eval()
    assert any(evaluated is module for module in method.modules())
    assert evaluated(torch.rand(1, 3, 32, 32)).shape == (1, method.ctx.num_classes, 32, 32)


@pytest.mark.parametrize("name", METHODS)
def test_contract_one_step_returns_finite_scalars_with_a_loss(name: str) -> None:
    method, optimizers = built(name)
    batch = fixed_batch()
    out = method.training_step(batch if method.uses_mix else dataclasses.replace(batch, mix=None),
                               registry.Step(0, 10, torch.Generator().manual_seed(0)))
    check_step(name, out)
    parts = step(stepper(method, optimizers), 0)
    assert set(parts) == set(out) and all(math.isfinite(v) for v in parts.values())


@pytest.mark.parametrize("name", METHODS)
def test_contract_state_dict_round_trip_restores_an_identical_next_step(name: str) -> None:
    trained, optimizers = built(name)
    run = stepper(trained, optimizers)
    for iteration in range(2):
        step(run, iteration)
    restored, restored_optimizers = built(name, seed=1)  # another initialisation, overwritten by the load
    assert not same_state(trained, restored)
    restored.load_state_dict(copy.deepcopy(trained.state_dict()))  # as a checkpoint file would hold them
    for key, optimizer in restored_optimizers.items():
        optimizer.load_state_dict(copy.deepcopy(optimizers[key].state_dict()))
    expected = step(run, 2)
    assert step(stepper(restored, restored_optimizers), 2) == expected
    assert same_state(trained, restored)


@pytest.mark.parametrize("name", METHODS)
def test_contract_a_step_through_forward_only_wrappers_equals_the_plain_step(name: str) -> None:
    plain, plain_optimizers = built(name)
    expected = step(stepper(plain, plain_optimizers), 0)
    method, optimizers = built(name)
    wrapped = {}
    for attribute, network in method.trainable().items():
        wrapped[attribute] = nn.DataParallel(network)  # on a CPU machine it only forwards calls, as DDP does
        setattr(method, attribute, wrapped[attribute])
    assert step(stepper(method, optimizers, wrapped), 0) == expected
    for attribute in wrapped:
        setattr(method, attribute, unwrap(getattr(method, attribute)))
    assert same_state(plain, method)


@pytest.mark.parametrize("name", METHODS)
def test_contract_every_parameter_is_listed_by_the_methods_command(name: str, monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(methods_command, "console", Console(file=out, width=400))
    assert cli.main(["methods", name]) == 0
    listed = out.getvalue()
    for field in dataclasses.fields(registry.get(name).Params):
        assert f"method.{field.name}" in listed


def test_contract_check_step_names_what_a_step_must_not_return() -> None:
    loss = torch.ones((), requires_grad=True) * 2
    check_step("mine", {"loss": loss, "part": torch.tensor(1.0), "share": 0.5})
    for out, message in (([loss], "must return a dict with a 'loss' entry"),
                         ({"total": loss}, "with keys total"),
                         ({"loss": torch.tensor(1.0)}, "scalar tensor with gradient"),
                         ({"loss": loss, "map": torch.zeros(2, 2)}, "'map' must be a scalar.*shape \\(2, 2\\)")):
        with pytest.raises(TypeError, match=message):
            check_step("mine", out)


def test_contract_the_adding_a_method_example_of_the_docs_trains(env, tiny_config, monkeypatch, tmp_path) -> None:
    """The example of docs/methods.md, copied as it stands, runs two steps as ``--method module:Class``."""
    import json
    import re
    import sys

    from benchmark import PROJECT_ROOT
    from benchmark.records import RunPaths

    section = (PROJECT_ROOT / "docs" / "methods.md").read_text().split("## Adding a method", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "readme_method.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "readme_method", raising=False)
    assert cli.main(["run", "--quiet", "--method", "readme_method:SelfTrain", "--split", "demo_1_4", "--config",
                     str(tiny_config), "--set", "schedule.iters=2", "--set", "schedule.eval_every=2"]) == 0
    record = json.loads(RunPaths.of("demo", "demo_1_4", "selftrain", 0).record.read_text())
    assert record["status"] == "finished" and record["completed_iterations"] == 2
    assert record["method_params"] == {"threshold": 0.95}  # the demo preset sets the threshold of every method


SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__")
"""Tensor methods that copy a value to the host: on a GPU each one stalls the step."""
FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.rand, torch.randn, torch.randint,
             torch.randperm, torch.tensor, torch.as_tensor, torch.linspace, torch.eye}


class FactoriesWithoutDevice(torch.overrides.TorchFunctionMode):
    """Records every tensor factory called without ``device=``: on CUDA such a tensor lands on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            self.found.append(func.__name__)
        return func(*args, **kwargs)


@pytest.mark.parametrize("name", METHODS)
def test_contract_a_step_neither_waits_for_the_device_nor_makes_tensors_off_it(name: str, monkeypatch) -> None:
    """Inside training_step no value is copied to the host (the trainer logs all scalars with one copy per
    step) and no tensor is made without naming the batch's device."""
    method, _ = built(name)
    batch, step = fixed_batch(), registry.Step(3, 10, torch.Generator().manual_seed(0))
    synced: list[str] = []
    for attribute in SYNCS:
        original = getattr(torch.Tensor, attribute)

        def counted(self, *args, _original=original, _name=attribute, **kwargs):
            synced.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attribute, counted)
    factories = FactoriesWithoutDevice()
    with factories:
        out = method.training_step(batch, step)
    monkeypatch.undo()
    assert synced == [] and factories.found == []
    check_step(name, out)
