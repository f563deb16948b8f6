"""``notebooks/04_evaluate.ipynb`` runs top to bottom on the test model (executed like the other notebooks)."""

from __future__ import annotations

import re

import pytest

from test_notebooks import execute, text_of


@pytest.mark.notebooks
def test_evaluate_notebook_runs_and_writes_a_calibrated_policy(monkeypatch, test_model_dir):
    pytest.importorskip("sklearn")
    monkeypatch.setenv("LLAMAGUARD_MODEL", str(test_model_dir))
    notebook = execute("04_evaluate.ipynb")
    printed = text_of(notebook)
    assert "WARNING: the random-weight TEST model ran - these numbers are meaningless" in printed
    assert "evaluate " in printed and "1 model pass(es)" in printed  # two thresholds, one pass
    assert re.search(r"^ +default +strict$", printed, re.MULTILINE)
    assert re.search(r"target FPR <= 0\.1: threshold \d\.\d{4}, FPR 0\.\d{3}, recall \d\.\d{3}", printed)
    assert '"threshold":' in printed and "loads back the same: True" in printed
    assert "line 2: label: no 'unsafe' label" in printed
    assert "line 3: label: the 'unsafe' label must be true or false, got 'no'" in printed
    assert "line 4: label: unknown category code(s) ['S99']" in printed
    assert re.search(r"line 5: invalid: .*wizard", printed)
    assert re.search(r"scored: [01] of 5 rows", printed)  # line 1, unless the random model garbles its answer
    pngs = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 2  # the precision-recall curve and the score histogram
