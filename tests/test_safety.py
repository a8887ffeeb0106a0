"""Safety rules hold in the source: checkpoints and weights load with weights_only=True, YAML with
safe_load, no shell is ever started, and --method module:Class imports only what it names."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from benchmark import cli
from benchmark.errors import UserError

SOURCES = sorted(p for folder in ("benchmark", "methods") for p in (Path(__file__).parents[1] / folder).rglob("*.py"))


def test_the_sources_are_found() -> None:
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_unsafe_loading_and_no_shell(path: Path) -> None:
    text = path.read_text()
    for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
        assert "weights_only=True" in call.group(1), f"{path}: {call.group(0)}"
    assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(", text), path
    assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, path
    assert "pickle.load" not in text and not re.search(r"(?<![.\w])(eval|exec)\(", text), path


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
