"""Every command the README shows runs on a fresh clone of this tree: the demo command (shortened to a few
steps of a tiny model), then each command of its table with its placeholders filled and its optional parts
left out, training ones shortened the same way."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.data import demo
from helpers import CHECKOUT

README = CHECKOUT / "README.md"
DEMO_COMMAND = "python -m benchmark run --method unimatch --split demo_1_16 --set schedule.iters=600 --tag it600"
FEW_STEPS = ["--set", "schedule.iters=2", "--set", "schedule.eval_every=2", "--set", "data.crop_size=48",
             "--set", "model.head_channels=16", "--set", "model.low_level_channels=8", "--set", "data.batch_size=4",
             "--set", "data.unlabeled_batch_size=4", "--set", "eval.batch_size=32"]
"""What makes a training command of the README take seconds."""
PLACEHOLDERS = {"A,B": "supervised,fixmatch", "S,T": "demo_1_16", "0,1,2": "0", "M": "supervised", "S": "demo_1_16"}


def fresh_checkout(target: Path) -> Path:
    """What a fresh clone of this working tree holds: tracked and untracked files that git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=CHECKOUT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = CHECKOUT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def table_commands(text: str) -> list[str]:
    """The commands of the README's table, as written (first column, in backticks)."""
    return re.findall(r"^\| `(python -m benchmark [^`]+)` \|", text, flags=re.MULTILINE)


def runnable(command: str, run_dir: Path) -> list[str]:
    """A table command as arguments: optional parts ``[...]`` left out, placeholders filled (a method, the
    demo split, one seed, the run folder), training shortened."""
    words = re.sub(r"\s*\[[^]]*\]", "", command).split()[1:]
    words = [str(run_dir) if word == "RUN_DIR" else PLACEHOLDERS.get(word, word) for word in words]
    if words[2] in ("run", "sweep"):
        words += ["--quiet"] if words[2] == "run" else ["--"]
        words += FEW_STEPS
    if words[2] == "bench":
        words += ["--steps", "1", "--methods", "supervised", *FEW_STEPS]
    return words


def test_placeholders_and_optional_parts_are_filled_as_a_user_would() -> None:
    run_dir = Path("/r")
    assert runnable("python -m benchmark eval RUN_DIR [--checkpoint best] [--list FILE]", run_dir) == [
        "-m", "benchmark", "eval", "/r"]
    assert runnable("python -m benchmark sweep --methods A,B --splits S,T --seeds 0,1,2", run_dir)[:9] == [
        "-m", "benchmark", "sweep", "--methods", "supervised,fixmatch", "--splits", "demo_1_16", "--seeds", "0"]
    assert table_commands("| `python -m benchmark methods [NAME]` | x |\n| other |") == ["python -m benchmark methods [NAME]"]


@pytest.mark.slow
def test_every_readme_command_runs_on_a_fresh_clone(tmp_path) -> None:
    if shutil.which("git") is None or not (CHECKOUT / ".git").exists():
        pytest.skip("not a git checkout")
    text = README.read_text()
    assert DEMO_COMMAND in text and "pytest" in text
    commands = table_commands(text)
    assert len(commands) >= 10
    clone = fresh_checkout(tmp_path / "clone")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BENCHMARK_")}

    def run(arguments: list[str]) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, *arguments], cwd=clone, env=environment, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(arguments)}:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        return done

    done = run([*DEMO_COMMAND.split()[1:], *FEW_STEPS, "--quiet"])
    assert "already finished" not in done.stdout
    run_dir = clone / "results" / "local" / "runs" / "demo" / "demo_1_16" / "unimatch+it600" / "seed0"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "finished" and record["completed_iterations"] == 2 and record["method"] == "unimatch"
    assert demo.variant(record["generated_data"]) is None  # the demo's present defaults, in the user's cache
    shutil.rmtree(clone / "results" / "reference" / "runs" / "demo" / "demo_1_16" / "unimatch+it600")  # promote's target
    for command in commands:
        run(runnable(command, run_dir))
    assert (clone / "results" / "reference" / "runs" / "demo" / "demo_1_16" / "unimatch+it600" / "seed0" /
            "record.json").is_file()  # promote
