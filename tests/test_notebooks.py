"""Notebooks run top to bottom on the tiny dataset."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["01-data-tour.ipynb", "02-qbg-vs-mql-mqa.ipynb"])
def test_notebook_runs(name, tiny_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("BG_DATA_DIR", str(tiny_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    assert os.environ["BG_DATA_DIR"] == str(tiny_dir)
