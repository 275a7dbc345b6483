"""The console scripts (``[project.scripts]``): each imports its command's module with the
garbage collector paused, then runs the command.

Importing MLflow, scikit-learn with SciPy, pandas and the rest creates about a million objects
that live as long as the process. With the collector on, the interpreter ran ~680
collections over them while importing ``bg-score`` (0.5-0.7 s of a 12-second rescore,
docs/benchmarks.md); paused, then frozen (left out of every later collection), they cost
none. Importing a command's module directly (``from buying_groups.cli.score import main``)
still works, only without this.
"""

from __future__ import annotations

import gc
import importlib


def _run(command: str) -> None:
    gc.disable()
    try:
        module = importlib.import_module(f"buying_groups.cli.{command}")
    finally:
        gc.freeze()
        gc.enable()
    module.main()


def generate() -> None:
    """``bg-generate``."""
    _run("generate")


def validate() -> None:
    """``bg-validate``."""
    _run("validate")


def baseline() -> None:
    """``bg-baseline``."""
    _run("baseline")


def train_roles() -> None:
    """``bg-train-roles``."""
    _run("train_roles")


def train_qualifier() -> None:
    """``bg-train-qualifier``."""
    _run("train_qualifier")


def promote() -> None:
    """``bg-promote``."""
    _run("promote")


def score() -> None:
    """``bg-score``."""
    _run("score")


def serve() -> None:
    """``bg-serve``."""
    _run("serve")


def pipeline() -> None:
    """``bg-pipeline``."""
    _run("pipeline")
