"""The training progress bar (rich): iteration, losses, iterations per second, time left."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


class SpeedColumn(ProgressColumn):
    """Iterations per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s", style="progress.data.speed")


class Progress:
    """A progress bar over training iterations with the latest losses, and notes (evaluations) printed
    above it. ``bar`` off hides the bar; ``notes`` off (processes other than the main one) hides all."""

    def __init__(self, total: int, start: int, title: str, bar: bool = True, notes: bool = True) -> None:
        self.notes = notes
        self.console = Console()
        self.bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                SpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                                console=self.console, disable=not (bar and notes), transient=False)
        self.task = self.bar.add_task(title, total=total, completed=start, losses="")

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, done: int, parts: dict[str, float]) -> None:
        """Show ``done`` iterations and the step's loss parts."""
        losses = " ".join(f"{k}={v:.3f}" for k, v in parts.items())
        self.bar.update(self.task, completed=done, losses=losses)

    def note(self, text: str) -> None:
        """Print a line above the bar (evaluations)."""
        if self.notes:
            self.bar.console.print(text)
