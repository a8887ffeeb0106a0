"""Safety rules hold in the source: checkpoints and weights load with weights_only=True, YAML with
safe_load, no shell is ever started, and --method module:Class imports only what it names."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from benchmark import cli
from benchmark.errors import UserError
from helpers import CHECKOUT

SOURCES = sorted(p for folder in ("benchmark", "methods") for p in (CHECKOUT / folder).rglob("*.py"))


def unsafe(text: str) -> list[str]:
    """The unsafe loads and shell calls in a source text."""
    found = [call.group(0) for call in re.finditer(r"torch\.load\(([^)]*)\)", text)
             if "weights_only=True" not in call.group(1)]
    found += re.findall(r"yaml\.(?:load|unsafe_load|full_load)\(", text)
    found += [word for word in ("shell=True", "os.system(", "os.popen(", "pickle.load") if word in text]
    return found + re.findall(r"(?<![.\w])(?:eval|exec)\(", text)


def test_the_checker_finds_every_unsafe_call() -> None:
    bad = ("torch.load(path)\nyaml.load(f)\nsubprocess.run(c, shell=True)\nos.system('x')\n"
           "pickle.load(f)\neval(text)\ntorch.load(p, weights_only=True)\nmodel.eval()\n")
    assert unsafe(bad) == ["torch.load(path)", "yaml.load(", "shell=True", "os.system(", "pickle.load", "eval("]


def test_the_sources_are_the_harness_and_every_method() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in SOURCES}
    assert {"benchmark/checkpoint.py", "benchmark/trainer.py", "benchmark/weights.py", "methods/mkd.py",
            "methods/speed.py", "methods/st_asmnet.py", "commands/run.py"} <= names
    assert sum(text.count("torch.load(") for text in (p.read_text() for p in SOURCES)) >= 3  # checks that bite


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_unsafe_loading_and_no_shell(path: Path) -> None:
    assert unsafe(path.read_text()) == []


def test_module_class_imports_only_the_named_module_and_wants_a_method(tmp_path, monkeypatch, capsys) -> None:
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "named.py").write_text("class Thing:\n    pass\n")
    (package / "other.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["run", "--method", "userpkg.named:Thing", "--split", "demo_1_4"]) == 2
    assert "userpkg.named:Thing is not a subclass of benchmark.method.Method" in capsys.readouterr().err
    assert "userpkg.named" in sys.modules and "userpkg.other" not in sys.modules


def test_debug_shows_the_traceback_of_a_user_error(env) -> None:
    with pytest.raises(UserError, match="unknown method"):
        cli.main(["--debug", "run", "--method", "nope", "--split", "demo_1_4"])
