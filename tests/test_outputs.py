"""Files and outputs are safe to trust.

Every writer (``moderate``'s output, ``evaluate --report``, ``EvaluationReport.to_json``, ``save_plots``,
``make-test-model``) refuses a path that is one of its inputs however it is spelled (the same path, a symlink,
a ``..`` detour, a hard link), and leaves the input byte for byte as it was. Reports are strict JSON (``jq``
reads them) for generated label sets whose metrics are undefined (no positives, no negatives, one row) and
with NaN or infinite values put into a report. Whole-file writes are atomic. Files read whole are bounded.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llamaguard_guardrails.cli import main
from llamaguard_guardrails.files import DatasetError, output_path, read_bounded, strict_json, write_atomic
from llamaguard_guardrails.scale import RowWriter, moderate

pytest.importorskip("sklearn")

ALIASES = ["same path", "symlink", "dotdot", "hard link"]


def alias(path: Path, how: str) -> Path:
    """Another name for ``path``'s file."""
    if how == "same path":
        return path
    if how == "dotdot":
        (path.parent / "sub").mkdir(exist_ok=True)
        return path.parent / "sub" / ".." / path.name
    other = path.parent / f"other-{how.replace(' ', '-')}{path.suffix}"
    if how == "symlink":
        other.symlink_to(path)
    else:
        os.link(path, other)
    return other


def labelled_rows(labels: list[bool]) -> tuple[list[str], list[str]]:
    """Labelled lines and the ``moderate`` verdict lines of the same rows (no model needed)."""
    lines, verdicts = [], []
    for n, unsafe in enumerate(labels, 1):
        lines.append(json.dumps({"id": n, "messages": [{"role": "user", "content": f"row {n}"}], "unsafe": unsafe}))
        p = 0.9 if unsafe else 0.1
        row = {"line": n, "id": n, "status": "unsafe" if p >= 0.5 else "safe", "safe": p < 0.5}
        verdicts.append(json.dumps({**row, "categories": ["S9"] if p >= 0.5 else [], "unsafe_probability": p}))
    return lines, verdicts


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    lines, verdicts = labelled_rows([True, False, True, False])
    paths = {"labelled": tmp_path / "labelled.jsonl", "verdicts": tmp_path / "verdicts.jsonl"}
    paths["labelled"].write_text("\n".join(lines) + "\n")
    paths["verdicts"].write_text("\n".join(verdicts) + "\n")
    paths["policy"] = tmp_path / "policy.json"
    paths["policy"].write_text(json.dumps({"threshold": 0.4}))
    return paths


def snapshot(paths: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in paths.items()}


def evaluate_cli(files: dict[str, Path], *extra: str) -> int:
    args = ["evaluate", str(files["labelled"]), "--verdicts", str(files["verdicts"]), "--policy", str(files["policy"])]
    return main([*args, "--no-progress", *extra])


@pytest.mark.parametrize("how", ALIASES)
@pytest.mark.parametrize("target", ["labelled", "verdicts", "policy"])
def test_evaluate_report_never_overwrites_an_input(files, target, how, capsys):
    before = snapshot(files)
    assert evaluate_cli(files, "--report", str(alias(files[target], how))) == 2
    assert "is the input file" in capsys.readouterr().err
    assert snapshot(files) == before


POLICY_SHAPES = {
    "path": lambda p: p,
    "text": str,
    "list": lambda p: [str(p), {"threshold": 0.6}],
    "named": lambda p: {"strict": p, "loose": {"threshold": 0.7}},
}


@pytest.mark.parametrize("shape", list(POLICY_SHAPES))
@pytest.mark.parametrize("how", ALIASES)
@pytest.mark.parametrize("target", ["labelled", "verdicts", "policy"])
def test_report_to_json_and_plots_never_overwrite_an_input(files, target, how, shape):
    """The policy files an evaluation read were not among a report's inputs: ``to_json`` wrote over them."""
    from llamaguard_guardrails.evaluation import evaluate

    policies = POLICY_SHAPES[shape](files["policy"])
    report = evaluate(files["labelled"], verdicts=files["verdicts"], policies=policies, progress=False)
    before = snapshot(files)
    with pytest.raises(DatasetError, match="is the input file"):
        report.to_json(alias(files[target], how))
    plots = files[target].parent / "plots"
    plots.mkdir()
    (plots / "pr_curve.png").symlink_to(files[target])  # a plot's file name that is an input
    with pytest.raises(DatasetError, match="is the input file"):
        report.save_plots(plots)
    assert snapshot(files) == before


def test_evaluate_plots_never_overwrite_a_policy_file(files, capsys):
    plots = files["policy"].parent / "plots"
    plots.mkdir()
    (plots / "pr_curve.png").symlink_to(files["policy"])
    before = snapshot(files)
    assert evaluate_cli(files, "--plots", str(plots)) == 2
    assert "is the input file" in capsys.readouterr().err
    assert snapshot(files) == before


@pytest.mark.parametrize("how", ALIASES)
def test_moderate_output_never_overwrites_its_input(files, how, capsys):
    before = snapshot(files)
    other_name = alias(files["labelled"], how)
    with pytest.raises(DatasetError, match="is the input file"):
        RowWriter(other_name, input_path=files["labelled"])
    with pytest.raises(DatasetError, match="is the input file"):
        moderate(files["labelled"], other_name, guard_factory=lambda: None, progress=False)
    assert snapshot(files) == before


def test_make_test_model_never_writes_into_a_folder_of_other_files(tmp_path, capsys):
    weights = tmp_path / "real-model"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"real weights")
    assert main(["make-test-model", str(weights)]) == 2
    assert "not a test model" in capsys.readouterr().err
    assert [p.name for p in weights.iterdir()] == ["model.safetensors"]
    assert (weights / "model.safetensors").read_bytes() == b"real weights"


# -- strict JSON ------------------------------------------------------------------------------------------


def strict_loads(text: str):
    def refuse(constant: str):
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def assert_jq_reads(path: Path) -> None:
    jq = shutil.which("jq")
    if jq is not None:
        subprocess.run([jq, "-e", ".", str(path)], check=True, capture_output=True, timeout=30)


LABEL_SETS = {
    "no positives": [False, False, False],
    "no negatives": [True, True],
    "one row": [True],
    "mixed": [True, False, True, False, False],
}


@pytest.mark.parametrize("labels", list(LABEL_SETS))
def test_reports_with_undefined_metrics_are_strict_json(tmp_path, labels):
    from llamaguard_guardrails.evaluation import evaluate

    lines, verdicts = labelled_rows(LABEL_SETS[labels])
    (tmp_path / "labelled.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "verdicts.jsonl").write_text("\n".join(verdicts) + "\n")
    report = evaluate(tmp_path / "labelled.jsonl", verdicts=tmp_path / "verdicts.jsonl", progress=False)
    # and values no metric should hold, put in directly: they must still come out as null
    first = report.policies[0]
    broken = first.model_copy(update={"auprc": math.nan, "roc_auc": math.inf, "target_fpr": -math.inf})
    report = report.model_copy(update={"policies": [broken, *report.policies[1:]]})
    out = tmp_path / "report.json"
    data = strict_loads(report.to_json(out, rows=True))
    assert strict_loads(out.read_text()) == data
    assert data["policies"][0]["auprc"] is None and data["policies"][0]["roc_auc"] is None
    assert_jq_reads(out)


def test_moderate_rows_are_strict_json(tmp_path):
    out = tmp_path / "rows.jsonl"
    with RowWriter(out) as writer:
        writer.write([{"line": 1, "status": "error", "unsafe_probability": math.nan}, {"line": 2, "id": math.inf}])
    rows = [strict_loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["unsafe_probability"] is None and rows[1]["id"] is None
    assert_jq_reads(out)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"a": {"b": (math.inf,)}}])
def test_strict_json_writes_null_for_every_non_finite_number(value):
    text = strict_json({"v": value})
    assert "NaN" not in text and "Infinity" not in text
    strict_loads(text)


# -- atomic writes and bounded reads ---------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")

    def fail(handle):
        handle.write(b"half a rep")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    write_atomic(target, lambda handle: handle.write(b"new"))
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_output_path_refuses_folders_and_missing_folders(tmp_path):
    with pytest.raises(DatasetError, match="is a folder"):
        output_path(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        output_path(tmp_path / "missing" / "out.json")
    assert output_path(tmp_path / "new.json", [tmp_path / "other.json", None]) == tmp_path / "new.json"


@pytest.mark.parametrize("size", [0, 99, 100, 101, 5000])
def test_files_read_whole_are_bounded(tmp_path, size):
    path = tmp_path / "conversation.json"
    path.write_bytes(b"x" * size)
    if size <= 100:
        assert read_bounded(path, "conversation file", max_bytes=100) == b"x" * size
    else:
        with pytest.raises(DatasetError, match="larger than 100 bytes"):
            read_bounded(path, "conversation file", max_bytes=100)


def test_the_cli_bounds_every_file_it_reads(files, tmp_path, monkeypatch, capsys):
    """``check``/``prompt --conversation`` and ``evaluate --policy`` refuse a file over the limit with exit 2
    before any model loads; an over-long labelled line is listed as a problem row, an over-long verdicts line
    refuses the verdicts file; the other rows are scored."""
    import importlib

    monkeypatch.setattr(importlib.import_module("llamaguard_guardrails.files"), "MAX_FILE_BYTES", 1000)
    monkeypatch.setattr(importlib.import_module("llamaguard_guardrails.scale.records"), "MAX_LINE_BYTES", 1000)
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"role": "user", "content": "x" * 2000}]))
    for command in ("check", "prompt"):
        assert main([command, "--model", str(tmp_path / "no-model"), "--conversation", str(big)]) == 2
        assert "larger than 1000 bytes" in capsys.readouterr().err
    files["policy"].write_text(json.dumps({"threshold": 0.4, "pad": " " * 2000}))
    assert evaluate_cli(files) == 2 and "larger than 1000 bytes" in capsys.readouterr().err

    from llamaguard_guardrails.evaluation import evaluate

    lines = files["labelled"].read_text().splitlines()
    lines[1] = json.dumps({"id": 2, "messages": "y" * 2000, "unsafe": False})
    files["labelled"].write_text("\n".join(lines) + "\n")
    report = evaluate(files["labelled"], verdicts=files["verdicts"], progress=False)
    assert [(r.line, "over the 1000-byte limit" in r.reason) for r in report.invalid_rows] == [(2, True)]
    assert report.policies[0].scored == 3
    files["verdicts"].write_text(files["verdicts"].read_text() + json.dumps({"line": 5, "pad": "z" * 2000}) + "\n")
    with pytest.raises(DatasetError, match="line 5: the line is"):
        evaluate(files["labelled"], verdicts=files["verdicts"], progress=False)
