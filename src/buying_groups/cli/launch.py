"""The console scripts (``[project.scripts]``) and the one place that tunes the process: each
makes SIGTERM an ordinary exit (so temporary folders and half-written files are cleaned up),
imports its command's module with the garbage collector paused, then runs the command.

Importing MLflow, scikit-learn with SciPy, pandas and the rest creates about a million objects
that live as long as the process. With the collector on, the interpreter ran ~680
collections over them while importing ``bg-score`` (0.5-0.7 s of a 12-second rescore,
docs/benchmarks.md); paused, then frozen (left out of every later collection), they cost
none. Importing a command's module directly (``from buying_groups.cli.score import main``)
still works, only without this.

A batch run (``bg-score``) then allocates millions of short-lived objects (frames, Arrow
conversions): its young generation is collected every 10,000 allocations rather than 700
(0.7-0.9 s less collecting in a rescore of the large dataset). At the end, what is still
allocated is frozen too: the interpreter's last collection over it cost 1.4 s of that
rescore.
"""

from __future__ import annotations

import gc
import importlib
import signal
from collections.abc import Callable


def _exit(signum: int, frame: object) -> None:
    # SIGTERM (a scheduler stopping the job) as an ordinary exit: temporary directories and
    # half-written files are removed on the way out instead of left behind.
    raise SystemExit(128 + signum)


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit(143)`` in this process (the main thread)."""
    signal.signal(signal.SIGTERM, _exit)


BATCH_COMMANDS = ("score",)


def _run(command: str) -> None:
    exit_cleanly_on_sigterm()
    gc.disable()
    try:
        module = importlib.import_module(f"buying_groups.cli.{command}")
    finally:
        gc.freeze()
        gc.enable()
    if command in BATCH_COMMANDS:
        gc.set_threshold(10_000, 20, 20)
    try:
        module.main()
    finally:
        gc.freeze()  # no last collection over everything still allocated


def _command(name: str) -> Callable[[], None]:
    """The console script of ``buying_groups.cli.<name>``."""

    def main() -> None:
        _run(name)

    main.__name__ = main.__qualname__ = name
    main.__doc__ = f"``bg-{name.replace('_', '-')}``."
    return main


generate = _command("generate")
validate = _command("validate")
baseline = _command("baseline")
train_roles = _command("train_roles")
train_qualifier = _command("train_qualifier")
train_retention = _command("train_retention")
promote = _command("promote")
score = _command("score")
serve = _command("serve")
pipeline = _command("pipeline")
