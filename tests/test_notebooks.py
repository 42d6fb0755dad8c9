"""The notebooks run: every code cell is executed in order, as Jupyter would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cells = json.loads(path.read_text())["cells"]
    namespace: dict = {"__name__": "__main__"}
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            exec(compile(source, f"{path.name}[{index}]", "exec"), namespace)
        except Exception as exc:  # name the cell, not this loop
            pytest.fail(f"{path.name} cell {index} raised {type(exc).__name__}: {exc}")
    if path.name == "tour.ipynb":  # its first song has four stems: four players plus the mix
        assert namespace["song"]._repr_html_().count("<audio") == 5


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"
