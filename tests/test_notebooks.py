"""Notebooks run top to bottom on the tiny dataset."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]

# each runs a kernel, trains a qualifier and draws its figures: the slow tier
pytestmark = pytest.mark.slow

# What each notebook must show, read from its own outputs.
SHOWS = {
    "01-data-tour.ipynb": ["job_title", "committee_role", "test: function accuracy"],
    "02-qbg-vs-mql-mqa.ipynb": ["QBG", "MQL", "MQA"],
    "03-customer-groups.ipynb": [
        "expansion",
        "renewal risk",
        "revenue_lost",
        "opportunities_expected",
    ],
}


@pytest.mark.parametrize("name", sorted(SHOWS))
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
    text = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    missing = [word for word in SHOWS[name] if word not in text]
    assert not missing, f"{name} printed no {missing}"
