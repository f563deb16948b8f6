"""Evaluation: metrics equal a hand computation on rows whose scores are scripted; bad rows are listed.

The model step is scripted (``testing.marker_probability``): each conversation carries its unsafe
probability as ``[p=0.75]`` and its category line as ``[cat=S9]``; the rest - prompts, batching, the
``moderate`` engine, the policy's threshold and category parsing - is the real code. Probabilities
are binary fractions, so every score is exact.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llamaguard_guardrails import InvalidPolicyError, LlamaGuard, Policy
from llamaguard_guardrails.evaluation import evaluate, load_policy, sample_path
from llamaguard_guardrails.evaluation import metrics as m
from llamaguard_guardrails.loading import load_prompt_builder
from llamaguard_guardrails.scale import DatasetError, moderate
from llamaguard_guardrails.testing import ScriptedBackend, marker_category, marker_probability, scripted_guard

pytest.importorskip("sklearn")

# (label unsafe, labelled categories, unsafe probability, category the scripted model names)
HAND_SET: list[tuple[bool, list[str] | None, float, str | None]] = [
    (True, ["S9"], 0.875, "S9"),
    (True, ["S2"], 0.75, "S1"),  # flagged, but named S1: S2 confused with S1
    (False, None, 0.625, "S1"),
    (True, ["S10"], 0.5, "S10"),  # tied with the next row, a safe one
    (False, None, 0.5, "S1"),
    (True, ["S11"], 0.375, "S11"),  # missed at 0.5
    (False, None, 0.25, None),
    (False, None, 0.125, None),
    (False, None, 0.0625, None),
]


def row(n: int, unsafe: Any, categories: Any, p: float | None, named: str | None, **extra: Any) -> dict[str, Any]:
    text = f"conversation {n}" + (f" [p={p}]" if p is not None else "") + (f" [cat={named}]" if named else "")
    data: dict[str, Any] = {"id": f"r{n}", "messages": [{"role": "user", "content": text}], **extra}
    if unsafe is not ...:
        data["unsafe"] = unsafe
    if categories is not None:
        data["categories"] = categories
    return data


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def builder(test_model_dir: Path):
    return load_prompt_builder(test_model_dir)


class Factory:
    """Scripted guards (scores from the text's markers); counts the guards built, i.e. the model passes."""

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.built = 0

    def __call__(self) -> LlamaGuard:
        self.built += 1
        backend = ScriptedBackend(self.builder, marker_category, probability=marker_probability)
        return LlamaGuard(backend, self.builder, cache_size=0)


@pytest.fixture
def factory(builder: Any) -> Factory:
    return Factory(builder)


@pytest.fixture(scope="module")
def hand_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [row(n, *spec) for n, spec in enumerate(HAND_SET, 1)]
    return write_jsonl(tmp_path_factory.mktemp("evaluate") / "hand.jsonl", rows)


def hand_sweep(labels: list[bool], scores: list[float]) -> list[dict[str, Any]]:
    """Every distinct threshold, highest first, with its counts: the definition, by hand."""
    points = []
    for t in sorted(set(scores), reverse=True):
        tp = sum(1 for y, s in zip(labels, scores) if y and s >= t)
        fp = sum(1 for y, s in zip(labels, scores) if not y and s >= t)
        fn, tn = sum(labels) - tp, len(labels) - sum(labels) - fp
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        points.append({"t": t, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "f1": f1, "fpr": fp / (fp + tn)})
    return points


# -- the hand-computed set ------------------------------------------------------------------------------


def test_metrics_at_the_threshold_equal_a_hand_computation(hand_file: Path, factory: Factory):
    report = evaluate(hand_file, guard_factory=factory, progress=False, target_fpr=0.2)
    p = report["default"]
    # flagged at 0.5: rows 1-5 (the 0.5 tie flags both rows); TP 1,2,4  FP 3,5  FN 6  TN 7,8,9
    at = p.at_threshold
    assert (at.tp, at.fp, at.fn, at.tn, at.flagged) == (3, 2, 1, 3, 5)
    assert at.precision == pytest.approx(3 / 5) and at.recall == pytest.approx(3 / 4)
    assert at.f1 == pytest.approx(6 / 9) and at.fpr == pytest.approx(2 / 5)
    # AUPRC (average precision): recall steps of 1/4 at precisions 1, 1, 3/5, 4/6
    assert p.auprc == pytest.approx(0.25 * (1 + 1 + 3 / 5 + 4 / 6))
    # ROC AUC: of 20 (unsafe, safe) pairs, 16 ranked right and one tie (0.5, 0.5) counted half
    assert p.roc_auc == pytest.approx(16.5 / 20)
    assert (p.scored, p.labelled_unsafe, p.labelled_safe, p.undecided, report.invalid_rows) == (9, 4, 5, [], [])
    assert report.model_passes == 1 and factory.built == 1 and report.test_model is False
    assert p.latency.checks == 9 and p.latency.p50_ms is not None and p.latency.p95_ms >= p.latency.p50_ms


def test_threshold_choices_equal_a_hand_sweep(hand_file: Path, factory: Factory):
    labels = [spec[0] for spec in HAND_SET]
    scores = [spec[2] for spec in HAND_SET]
    sweep = hand_sweep(labels, scores)
    best = max(sweep, key=lambda q: (q["f1"], q["t"]))
    assert best["t"] == 0.375 and best["f1"] == pytest.approx(0.8)  # the hand sweep, read off by hand
    for target, expected_t, expected_recall in [(0.0, 0.75, 0.5), (0.2, 0.625, 0.5), (0.4, 0.375, 1.0)]:
        report = evaluate(hand_file, guard_factory=factory, progress=False, target_fpr=target)
        p = report["default"]
        meeting = [q for q in sweep if q["fpr"] <= target]
        assert min(q["t"] for q in meeting) == expected_t
        assert p.at_target_fpr is not None and p.at_target_fpr.threshold == expected_t
        assert p.at_target_fpr.recall == pytest.approx(expected_recall) and p.at_target_fpr.fpr <= target
        assert p.best_f1 is not None and p.best_f1.threshold == best["t"] and p.best_f1.f1 == pytest.approx(0.8)
    # the fixed grid of the sweep counts the same way
    grid = {q.threshold: q for q in p.sweep}
    assert (grid[0.5].tp, grid[0.5].fp) == (3, 2) and (grid[0.4].tp, grid[0.4].fp) == (3, 2)
    assert (grid[0.0].flagged, grid[1.0].flagged) == (9, 0)


def test_categories_and_confusions_equal_a_hand_count(hand_file: Path, factory: Factory):
    p = evaluate(hand_file, guard_factory=factory, progress=False)["default"]
    assert p.category_rows == 4  # the rows labelled unsafe with categories
    cats = {c.code: c for c in p.categories}
    assert set(cats) == {"S1", "S2", "S9", "S10", "S11"}
    assert (cats["S9"].tp, cats["S9"].precision, cats["S9"].recall, cats["S9"].f1) == (1, 1.0, 1.0, 1.0)
    assert (cats["S2"].labelled, cats["S2"].named, cats["S2"].precision, cats["S2"].recall) == (1, 0, None, 0.0)
    assert (cats["S1"].labelled, cats["S1"].named, cats["S1"].precision, cats["S1"].recall) == (0, 1, 0.0, None)
    assert cats["S11"].fn == 1 and cats["S11"].f1 == 0.0  # missed: the row scored below the threshold
    pairs = {(c.labelled, c.predicted): c.rows for c in p.confusions}
    assert pairs == {("S9", "S9"): 1, ("S2", "S1"): 1, ("S10", "S10"): 1, ("S11", "safe"): 1}


def test_policies_differing_in_threshold_share_one_pass_and_equal_separate_runs(tmp_path: Path, factory: Factory):
    # row 10 scores 0.375 with no category: unreadable at 0.3 (a guard error), plainly safe at 0.5
    rows = [row(n, *spec) for n, spec in enumerate(HAND_SET, 1)] + [row(10, False, None, 0.375, None)]
    path = write_jsonl(tmp_path / "set.jsonl", rows)
    together = evaluate(path, guard_factory=factory, policies={"a": {}, "b": {"threshold": 0.3}}, progress=False)
    assert together.model_passes == 1 and factory.built == 1
    for name, policy in [("a", Policy()), ("b", Policy(threshold=0.3))]:
        alone = evaluate(path, guard_factory=factory, policies={name: policy}, progress=False)[name]
        mine = together[name]
        assert mine.at_threshold == alone.at_threshold
        assert (mine.auprc, mine.roc_auc, mine.best_f1, mine.at_target_fpr) == (
            alone.auprc,
            alone.roc_auc,
            alone.best_f1,
            alone.at_target_fpr,
        )
        assert mine.categories == alone.categories and mine.confusions == alone.confusions
        assert mine.undecided == alone.undecided
    assert [u.line for u in together["b"].undecided] == [10] and together["a"].undecided == []
    assert "derived" in together["a"].notes and "derived" not in together["b"].notes
    # other categories need their own pass
    factory.built = 0
    two = evaluate(path, guard_factory=factory, policies=[Policy(), Policy(excluded_categories=["S9"])], progress=False)
    assert two.model_passes == 2 and factory.built == 2
    assert [p.name for p in two.policies] == ["t=0.5", "t=0.5 -S9"]
    excluded = two["t=0.5 -S9"]
    assert excluded.at_threshold.tp == 2  # row 1 (S9 only) passes under a policy excluding S9
    assert excluded.rows[0].score == 0.0  # and passes at any threshold: scored 0 for the sweep


# -- defined results at the edges ------------------------------------------------------------------------


def test_ties_are_one_threshold_with_defined_results():
    labels = [True, False, True, False, False]
    scores = [0.5] * 5
    auprc, roc_auc, reasons = m.ranking(labels, scores)
    assert auprc == pytest.approx(2 / 5) and roc_auc == pytest.approx(0.5) and reasons == {}
    best, why = m.best_f1(labels, scores)
    assert why is None and best.threshold == 0.5 and (best.tp, best.fp) == (2, 3)  # a tie is never split
    point, why = m.threshold_for_fpr(labels, scores, 0.1)
    # only flagging nothing meets FPR <= 0.1: the smallest threshold above the highest score
    assert why is None and point.threshold == math.nextafter(0.5, 1.0)
    assert (point.flagged, point.recall, point.fpr, point.precision) == (0, 0.0, 0.0, None)


def test_all_one_class_sets_give_defined_results():
    safe_only, scores = [False] * 4, [0.125, 0.25, 0.5, 0.75]
    point = m.at_threshold(safe_only, scores, 0.5)
    assert (point.fp, point.tn, point.precision, point.recall, point.f1, point.fpr) == (2, 2, 0.0, None, 0.0, 0.5)
    auprc, roc_auc, reasons = m.ranking(safe_only, scores)
    assert auprc is None and roc_auc is None and set(reasons) == {"auprc", "roc_auc"}
    assert m.best_f1(safe_only, scores) == (None, "no row labelled unsafe: F1 is undefined")
    fpr_point, _ = m.threshold_for_fpr(safe_only, scores, 0.25)
    assert fpr_point.threshold == 0.75 and fpr_point.fpr == 0.25 and fpr_point.recall is None

    unsafe_only = [True] * 4
    point = m.at_threshold(unsafe_only, scores, 0.5)
    assert (point.tp, point.fn, point.precision, point.recall, point.fpr) == (2, 2, 1.0, 0.5, None)
    auprc, roc_auc, reasons = m.ranking(unsafe_only, scores)
    assert auprc == 1.0 and roc_auc is None and set(reasons) == {"roc_auc"}
    assert m.threshold_for_fpr(unsafe_only, scores, 0.1)[0] is None
    best, _ = m.best_f1(unsafe_only, scores)
    assert best.threshold == 0.125 and best.f1 == 1.0

    nothing = m.at_threshold([False, False], [0.1, 0.2], 0.5)
    assert (nothing.precision, nothing.recall, nothing.f1, nothing.fpr) == (None, None, None, 0.0)
    assert set(m.undefined_reasons(nothing)) == {"precision", "recall", "f1"}
    # a safe row at 1.0: no threshold in [0, 1] keeps FPR at 0
    assert m.threshold_for_fpr([True, False], [0.5, 1.0], 0.0) == (
        None,
        "a row labelled safe scores 1.0: no threshold in [0, 1] keeps FPR <= 0.0",
    )


def test_all_safe_labelled_file_reports_reasons_not_crashes(tmp_path: Path, factory: Factory):
    rows = [row(n, False, None, p, None) for n, p in enumerate([0.125, 0.25, 0.375], 1)]
    p = evaluate(write_jsonl(tmp_path / "safe.jsonl", rows), guard_factory=factory, progress=False)["default"]
    assert (p.at_threshold.tn, p.at_threshold.recall, p.auprc, p.roc_auc, p.best_f1) == (3, None, None, None, None)
    assert {"recall", "auprc", "roc_auc", "best_f1"} <= set(p.notes)
    assert "only rows labelled safe" in p.notes["roc_auc"]


# -- bad rows: listed with the reason, never dropped, never counted ------------------------------------


def test_bad_labels_and_undecided_rows_are_listed_not_counted(tmp_path: Path, factory: Factory):
    rows = [
        row(1, True, ["S9"], 0.875, "S9"),
        row(2, False, None, 0.125, None),
        row(3, ..., None, 0.875, "S9"),  # no label
        row(4, "true", None, 0.875, "S9"),  # not a boolean
        row(5, 1, None, 0.125, None),  # not a boolean either
        row(6, True, ["S99"], 0.875, "S9"),  # unknown code
        row(7, True, "S9", 0.875, "S9"),  # not a list
        row(8, False, ["S1"], 0.125, None),  # safe with categories
        "this line is not JSON",
        {"id": "r10", "messages": [{"role": "wizard", "content": "hi"}], "unsafe": False},  # the guard cannot read it
        row(11, True, None, 0.75, None),  # the model names no category: a guard error
        [{"role": "user", "content": "no labels at all"}],
    ]
    report = evaluate(write_jsonl(tmp_path / "bad.jsonl", rows), guard_factory=factory, progress=False)
    reasons = {r.line: r.reason for r in report.invalid_rows}
    assert set(reasons) == {3, 4, 5, 6, 7, 8, 9, 12}
    assert "no 'unsafe' label" in reasons[3]
    assert "must be true or false, got 'true'" in reasons[4] and "got 1" in reasons[5]
    assert "unknown category code(s) ['S99']" in reasons[6]
    assert "must be a list of codes" in reasons[7] and "labelled safe has categories" in reasons[8]
    assert "not a JSON line" in reasons[9] and "no labels" in reasons[12]
    p = report["default"]
    undecided = {u.line: (u.kind, u.reason) for u in p.undecided}
    assert undecided[10][0] == "invalid" and "wizard" in undecided[10][1]
    assert undecided[11] == ("error", "the model answered 'unsafe' without a category")
    assert (p.at_threshold.tp, p.at_threshold.tn, p.at_threshold.fp, p.at_threshold.fn) == (1, 1, 0, 0)
    assert p.scored + len(p.undecided) + len(report.invalid_rows) == report.rows == len(rows)
    text = report.table()
    assert "rows with unusable labels (never scored): 8" in text and "line 11 (id 'r11'): error:" in text
    assert "rows the guard did not decide (default; not counted as safe or unsafe): 2" in text


def test_custom_category_codes_are_known_when_a_policy_defines_them(tmp_path: Path, factory: Factory):
    rows = [row(1, True, ["S15"], 0.875, "S15"), row(2, False, None, 0.125, None)]
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    assert evaluate(path, guard_factory=factory, progress=False).invalid_rows[0].line == 1  # S15 unknown here
    custom = {"custom_categories": {"S15": "Gardening advice."}}
    p = evaluate(path, guard_factory=factory, policies={"garden": custom}, progress=False)["garden"]
    assert [(c.code, c.name, c.tp) for c in p.categories] == [("S15", "Gardening advice", 1)]


# -- other inputs: Parquet, a verdicts file -------------------------------------------------------------


def test_parquet_labels_equal_jsonl(hand_file: Path, tmp_path: Path, factory: Factory):
    rows = [json.loads(line) for line in hand_file.read_text().splitlines()]
    table = pa.table(
        {
            "id": [r["id"] for r in rows],
            "messages": [json.dumps(r["messages"]) for r in rows],
            "unsafe": [r["unsafe"] for r in rows],
            "categories": [r.get("categories") for r in rows],
        }
    )
    pq.write_table(table, tmp_path / "hand.parquet")
    from_parquet = evaluate(tmp_path / "hand.parquet", guard_factory=factory, progress=False)["default"]
    from_jsonl = evaluate(hand_file, guard_factory=factory, progress=False)["default"]
    assert from_parquet.at_threshold == from_jsonl.at_threshold and from_parquet.categories == from_jsonl.categories
    pq.write_table(table.drop_columns(["unsafe"]), tmp_path / "nolabels.parquet")
    with pytest.raises(DatasetError, match="no 'unsafe' label column"):
        evaluate(tmp_path / "nolabels.parquet", guard_factory=factory, progress=False)


def test_verdicts_file_is_scored_without_the_model(hand_file: Path, tmp_path: Path, factory: Factory):
    out = tmp_path / "verdicts.jsonl"
    moderate(hand_file, out, guard_factory=factory, policy=Policy(threshold=0.3), progress=False)
    factory.built = 0
    policies = {"a": {}, "b": {"threshold": 0.3}}
    scored = evaluate(hand_file, verdicts=out, policies=policies)
    assert factory.built == 0 and scored.model_passes == 0 and scored.verdicts == str(out)
    ran = evaluate(hand_file, guard_factory=factory, policies=policies, progress=False)
    for name in policies:
        assert scored[name].at_threshold == ran[name].at_threshold
        assert (scored[name].auprc, scored[name].best_f1) == (ran[name].auprc, ran[name].best_f1)
        assert scored[name].categories == ran[name].categories
    assert scored["a"].latency.p50_ms is None and "verdicts file" in scored["a"].latency.note
    # Parquet verdicts (ids stored as text) are read the same way
    moderate(hand_file, tmp_path / "v.parquet", guard_factory=factory, policy=Policy(threshold=0.3), progress=False)
    assert evaluate(hand_file, verdicts=tmp_path / "v.parquet")["default"].at_threshold == ran["a"].at_threshold


def test_a_verdicts_file_that_does_not_match_is_refused(hand_file: Path, tmp_path: Path, factory: Factory):
    other = write_jsonl(tmp_path / "other.jsonl", [row(n, True, None, 0.5, "S1") for n in range(20, 30)])
    moderate(other, tmp_path / "other_v.jsonl", guard_factory=factory, progress=False)
    with pytest.raises(DatasetError, match="lines \\[10\\]"):  # one line more than the labelled file
        evaluate(hand_file, verdicts=tmp_path / "other_v.jsonl")
    short = write_jsonl(tmp_path / "short.jsonl", [row(n, True, None, 0.5, "S1") for n in range(20, 25)])
    moderate(short, tmp_path / "short_v.jsonl", guard_factory=factory, progress=False)
    with pytest.raises(DatasetError, match="id 'r20', but the labelled row's id is 'r1'"):
        evaluate(hand_file, verdicts=tmp_path / "short_v.jsonl")
    write_jsonl(tmp_path / "junk.jsonl", [{"hello": 1}])
    with pytest.raises(DatasetError, match="not a moderate output row"):
        evaluate(hand_file, verdicts=tmp_path / "junk.jsonl")
    with pytest.raises(InvalidPolicyError, match="may differ only in threshold"):
        evaluate(hand_file, verdicts=tmp_path / "short_v.jsonl", policies=[{}, {"excluded_categories": ["S1"]}])


# -- the report -------------------------------------------------------------------------------------------


def test_report_json_frame_table_and_plots(hand_file: Path, tmp_path: Path, factory: Factory):
    report = evaluate(hand_file, guard_factory=factory, policies={"default": {}, "strict": {"threshold": 0.3}})
    data = json.loads(report.to_json(tmp_path / "report.json"))
    assert data == json.loads((tmp_path / "report.json").read_text())
    assert [p["name"] for p in data["policies"]] == ["default", "strict"] and "rows" not in data["policies"][0]
    assert data["policies"][0]["at_threshold"]["tp"] == 3 and data["policies"][1]["at_threshold"]["threshold"] == 0.3
    with_rows = json.loads(report.to_json(rows=True))
    assert [r["line"] for r in with_rows["policies"][0]["rows"]] == list(range(1, 10))
    frame = report.to_frame()
    assert list(frame.index) == ["default", "strict"] and frame.loc["default", "precision"] == pytest.approx(0.6)
    assert set(report.category_frame()["policy"]) == {"default", "strict"}
    lines = report.table().splitlines()
    assert lines[2].split() == ["default", "strict"]
    assert re.search(r"^precision +0\.600 +0\.667$", report.table(), re.MULTILINE)
    paths = report.save_plots(tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == ["category_f1.png", "pr_curve.png", "roc_curve.png", "scores_default.png", "scores_strict.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert report["strict"].calibrated().threshold == report["strict"].at_target_fpr.threshold
    assert report["default"].calibrated("best_f1") == Policy(threshold=0.375)


def test_policy_files_load_and_a_written_policy_round_trips(tmp_path: Path):
    policy = Policy(threshold=0.375, excluded_categories=["S6"], custom_categories={"S15": "Gardening advice."})
    (tmp_path / "p.json").write_text(policy.model_dump_json())
    assert load_policy(tmp_path / "p.json") == policy
    (tmp_path / "bad.json").write_text('{"threshhold": 0.3}')
    with pytest.raises(InvalidPolicyError, match=r"bad\.json.*threshhold"):
        load_policy(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[0.3]")
    with pytest.raises(InvalidPolicyError, match="JSON object"):
        load_policy(tmp_path / "list.json")


def test_the_sample_is_well_formed():
    from llamaguard_guardrails.core.categories import LLAMA_GUARD_4_CATEGORIES
    from llamaguard_guardrails.evaluation import read_labels

    labels = read_labels(sample_path(), LLAMA_GUARD_4_CATEGORIES)
    assert len(labels) == 40 and all(r.problem is None for r in labels)
    assert sum(r.unsafe for r in labels) == 20 and all(r.categories for r in labels if r.unsafe)


def test_importing_the_package_imports_neither_sklearn_nor_matplotlib():
    code = (
        "import sys, llamaguard_guardrails as lg, llamaguard_guardrails.evaluation\n"
        "assert callable(lg.evaluate) and lg.evaluate is llamaguard_guardrails.evaluation.evaluate\n"
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_arguments_are_checked(hand_file: Path, factory: Factory):
    with pytest.raises(ValueError, match="exactly one of"):
        evaluate(hand_file)
    with pytest.raises(ValueError, match="exactly one of"):
        evaluate(hand_file, guard_factory=factory, verdicts=hand_file)
    with pytest.raises(ValueError, match="target_fpr"):
        evaluate(hand_file, guard_factory=factory, target_fpr=1.5)
    with pytest.raises(DatasetError, match="does not exist"):
        evaluate(hand_file.with_name("missing.jsonl"), guard_factory=factory)
    csv = hand_file.with_suffix(".csv")
    csv.write_text("unsafe,messages\n")
    with pytest.raises(DatasetError, match="unknown format"):
        evaluate(csv, guard_factory=factory)


# -- the Ray engine -----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")
@pytest.mark.slow  # a Ray cluster with model-loading actors (minutes on 2 cores)
def test_ray_engine_gives_the_local_engine_s_report(hand_file: Path, test_model_dir: Path, factory: Factory):
    pytest.importorskip("ray")
    # picklable: every Ray actor builds its own scripted guard
    actors = functools.partial(
        scripted_guard, test_model_dir, marker_category, probability=marker_probability, cache_size=0
    )
    ray = evaluate(hand_file, guard_factory=actors, engine="ray", num_workers=2, batch_size=4, progress=False)
    local = evaluate(hand_file, guard_factory=factory, progress=False)
    assert ray.engine == "ray" and ray["default"].at_threshold == local["default"].at_threshold
    assert (ray["default"].auprc, ray["default"].categories) == (local["default"].auprc, local["default"].categories)
    assert ray["default"].latency.p50_ms is None and "ray engine" in ray["default"].latency.note
