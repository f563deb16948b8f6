"""``llamaguard-guardrails evaluate``: the table, the JSON report, the plots, policies side by side, exit codes."""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path

import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.cli import main
from llamaguard_guardrails.cli.common import guard_source
from llamaguard_guardrails.loading import load_prompt_builder
from llamaguard_guardrails.scale import moderate
from llamaguard_guardrails.testing import ScriptedBackend, marker_category, marker_probability

pytest.importorskip("sklearn")

ROWS = [
    # (label, categories, scripted unsafe probability, category named)
    (True, ["S9"], 0.875, "S9"),
    (True, ["S2"], 0.75, "S1"),
    (False, None, 0.625, "S1"),
    (True, ["S11"], 0.375, "S11"),
    (False, None, 0.25, None),
    (False, None, 0.125, None),
]


pytestmark = pytest.mark.usefixtures("processors_read_once")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaluate-cli") / "labelled.jsonl"
    lines = []
    for n, (unsafe, categories, p, named) in enumerate(ROWS, 1):
        text = f"conversation {n} [p={p}]" + (f" [cat={named}]" if named else "")
        row = {"id": n, "messages": [{"role": "user", "content": text}], "unsafe": unsafe}
        if categories:
            row["categories"] = categories
        lines.append(json.dumps(row))
    lines.append(json.dumps({"id": 7, "messages": [{"role": "user", "content": "hi"}], "unsafe": "no"}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def verdicts(labelled: Path, test_model_dir: Path) -> Path:
    """``moderate`` output of the labelled file at threshold 0.25, from the scripted model step."""
    builder = load_prompt_builder(test_model_dir)

    def factory() -> LlamaGuard:
        return LlamaGuard(ScriptedBackend(builder, marker_category, probability=marker_probability), builder)

    out = labelled.with_name("verdicts.jsonl")
    moderate(labelled, out, guard_factory=factory, policy=Policy(threshold=0.25), progress=False)
    return out


def test_verdicts_two_policies_side_by_side_with_report_and_plots(labelled: Path, verdicts: Path, tmp_path, capsys):
    (tmp_path / "strict.json").write_text(json.dumps({"threshold": 0.25}))
    report, plots = tmp_path / "report.json", tmp_path / "plots"
    code = main(
        ["evaluate", str(labelled), "--verdicts", str(verdicts), "--policy", str(tmp_path / "strict.json")]
        + ["--threshold", "0.5", "--target-fpr", "0.34", "--report", str(report), "--plots", str(plots)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].split() == ["strict", "t=0.5"]  # the --policy file first, then the command line's policy
    # row 5 (p 0.25, no category named) is a guard error at 0.25, and safe at 0.5 (the line is not asked for)
    assert re.search(r"^TP / FP / FN / TN +3 / 1 / 0 / 1 +2 / 1 / 1 / 2$", out, re.MULTILINE)
    assert "line 5 (id 5): error: the model answered 'unsafe' without a category" in out
    assert "rows with unusable labels (never scored): 1" in out and "line 7 (id 7): label:" in out
    data = json.loads(report.read_text())
    assert [p["name"] for p in data["policies"]] == ["strict", "t=0.5"] and data["model_passes"] == 0
    at = data["policies"][1]["at_threshold"]
    assert (at["precision"], at["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    # FPR <= 0.34 (1 of 3 safe rows): the lowest such threshold is 0.375, keeping every unsafe row
    assert data["policies"][1]["at_target_fpr"]["threshold"] == 0.375
    assert data["policies"][1]["at_target_fpr"]["recall"] == 1.0
    assert sorted(p.name for p in plots.iterdir()) == [
        "category_f1.png",
        "pr_curve.png",
        "roc_curve.png",
        "scores_strict.png",
        "scores_t_0.5.png",
    ]
    assert "report:" in err and "plots:" in err


def test_the_model_runs_when_no_verdicts_are_given(labelled: Path, test_model_dir: Path, tmp_path, capsys):
    """On the real (random-weight) test model: the numbers are meaningless, the report is complete."""
    report = tmp_path / "r.json"
    code = main(["evaluate", str(labelled), "--model", str(test_model_dir), "--no-progress", "--report", str(report)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("WARNING: the random-weight TEST model ran - these numbers are meaningless")
    data = json.loads(report.read_text())
    assert data["test_model"] is True
    (policy,) = data["policies"]
    assert policy["name"] == "default" and data["model_passes"] == 1 and data["engine"] == "local"
    assert policy["scored"] + len(policy["undecided"]) == 6 and len(data["invalid_rows"]) == 1
    assert policy["latency"]["checks"] >= 1 and policy["latency"]["p50_ms"] > 0


def test_bad_input_exits_2_with_one_line(labelled: Path, verdicts: Path, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.jsonl"), "--verdicts", str(verdicts)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"threshold": 2}')
    assert main(["evaluate", str(labelled), "--verdicts", str(verdicts), "--policy", str(tmp_path / "bad.json")]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["evaluate", str(labelled), "--verdicts", str(verdicts), "--target-fpr", "2"]) == 2
    assert "target_fpr" in capsys.readouterr().err
    assert main(["evaluate", str(labelled), "--verdicts", str(verdicts), "--exclude", "S99"]) == 2
    assert "unknown category" in capsys.readouterr().err
    assert main(["evaluate", str(labelled)]) == 2  # neither --model nor --verdicts
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--model --verdicts is required" in err


def test_vllm_url_scores_on_the_server_with_the_local_tokenizer():
    args = argparse.Namespace(vllm_url="http://gpu:8000", vllm_model=None, model="meta-llama/LG4")
    factory = guard_source(args)["guard_factory"]
    assert isinstance(factory, functools.partial) and factory.func == LlamaGuard.from_vllm
    assert factory.args == ("http://gpu:8000",)
    assert factory.keywords == {"model": "meta-llama/LG4", "tokenizer": "meta-llama/LG4"}
