"""examples/quickstart.ipynb runs in a real Jupyter kernel (nbclient), outputs checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def _outputs(notebook: object, kind: str) -> list[dict[str, object]]:
    return [
        output
        for cell in notebook.cells  # type: ignore[attr-defined]
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == kind
    ]


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    copy = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the traceback if any cell fails

    shown = _outputs(notebook, "execute_result") + _outputs(notebook, "display_data")
    html = [str(output["data"]["text/html"]) for output in shown if "text/html" in output["data"]]
    pngs = [output for output in shown if "image/png" in output["data"]]
    streams = "".join(str(output["text"]) for output in _outputs(notebook, "stream"))

    # the result grid, with every seed
    assert any(all(f"seed {seed}" in page for seed in (7, 8, 9, 10)) for page in html)
    assert any("seed 20" in page and "seed 21" in page for page in html)
    # images inline: one on its own, two through display()
    assert len(pngs) >= 3
    # progress bars (a text bar without ipywidgets) reached the notebook
    assert "8/8" in streams and "4/4" in streams
    # top-level await ran: three results and the streamed steps
    assert "[(0,), (1,), (2,)] ['1/4', '2/4', '3/4', '4/4']" in streams
    assert (tmp_path / "notebook-out").is_dir()
    final = notebook.cells[-1].outputs[-1]
    assert final["data"]["text/plain"] == "20"
