"""The notebooks: stored without outputs, and each one runs top to bottom (random weights, reduced settings)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01_segment_anything.ipynb", "02_segment_everything.ipynb", "03_compare_models.ipynb")
RANDOM_WEIGHTS_BANNER = "RANDOM WEIGHTS — masks are meaningless"
CELL_TIMEOUT_S = 600


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def output_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the code cells printed (streams and text results)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def image_outputs(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def test_the_notebook_folder_holds_exactly_the_three_notebooks():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == list(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_notebook_is_valid_and_has_no_outputs(name):
    notebook = read(name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [], f"{name}: a stored cell has outputs (store notebooks stripped)"
        assert cell.execution_count is None, f"{name}: a stored cell has an execution count"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_on_random_weights(name, monkeypatch, tmp_path):
    monkeypatch.setenv("MOBILE_SAM_RANDOM_WEIGHTS", "1")
    monkeypatch.setenv("MOBILE_SAM_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MOBILE_SAM_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MOBILE_SAM_CACHE_DIR", str(tmp_path / "empty_cache"))  # nothing may need a checkpoint
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = read(name)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    assert RANDOM_WEIGHTS_BANNER in output_text(notebook)
    assert image_outputs(notebook) > 0, f"{name} showed no figure"
