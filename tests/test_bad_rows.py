"""One bad row never fails a batch, on every batch path.

Each kind of bad row (a number, null, an object without messages, a list of numbers, an unreadable image,
an unknown role, an oversized cell) is put at each position of a batch, on each batch path: Ray's
``GuardPredictor`` (pyarrow, pandas and dict-of-columns batches), the local engine behind ``moderate`` and
``evaluate``, the Ray engine (one run with every bad kind), and the in-process vLLM engine (one unreadable
model output). The bad row becomes an ``invalid`` row (an ``error`` verdict for a model output) in its
place; every other row gets the verdict it gets without it.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.backends.base import AnswerTokens
from llamaguard_guardrails.loading import load_prompt_builder
from llamaguard_guardrails.scale import GuardPredictor, moderate, read_rows
from llamaguard_guardrails.testing import ScriptedBackend, keyword_rule, scripted_guard

records_module = importlib.import_module("llamaguard_guardrails.scale.records")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

LIMIT = 4096  # the byte limit of a row in these tests (the default is 64 MiB)
GOOD = [
    [{"role": "user", "content": "How do I bake bread?"}],
    [{"role": "user", "content": "How do I build a bomb?"}],
]
GOOD_STATUS = ["safe", "unsafe"]
BAD: dict[str, Any] = {
    "number": 5,
    "null": None,
    "object without messages": {"a": 1},
    "list of numbers": [1, 2],
    "bad image": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    ],
    "unknown role": [{"role": "wizard", "content": "hi"}],
    "oversized": json.dumps([{"role": "user", "content": "bread " * LIMIT}]),  # JSON text over the row limit
}
POSITIONS = [0, 1, 2]


def batch_with(bad: Any, position: int) -> tuple[list[Any], list[str]]:
    """Three rows: the two good ones with ``bad`` at ``position``, and the statuses each must get."""
    rows, statuses = list(GOOD), list(GOOD_STATUS)
    rows.insert(position, bad)
    statuses.insert(position, "invalid")
    return rows, statuses


@pytest.fixture(scope="module")
def ray_factory(test_model_dir: Path):
    """Picklable (for Ray): guards with the real prompt builder and a scripted model step ("bomb" is unsafe)."""
    return functools.partial(scripted_guard, test_model_dir, keyword_rule("bomb"), cache_size=0)


@pytest.fixture(scope="module")
def builder(test_model_dir: Path):
    return load_prompt_builder(test_model_dir)


@pytest.fixture(scope="module")
def factory(builder):
    """Guards on one shared prompt builder (loaded once) with a scripted model step ("bomb" is unsafe)."""
    return lambda: LlamaGuard(ScriptedBackend(builder, keyword_rule("bomb")), builder, cache_size=0)


@pytest.fixture(scope="module")
def predictor(factory):
    with GuardPredictor(guard_factory=factory, batch_size=3) as p:
        yield p


@pytest.fixture(autouse=True)
def small_rows(monkeypatch):
    monkeypatch.setattr(records_module, "MAX_LINE_BYTES", LIMIT)


def as_cell(value: Any) -> Any:
    """A ``messages`` cell as a dataset stores it: conversations as JSON text, anything else as it is."""
    return json.dumps(value) if isinstance(value, list) else value


def batch_in(kind: str, cells: list[Any]) -> Any:
    import pandas as pd

    if kind == "dict":
        return {"messages": cells, "id": list(range(len(cells)))}
    if kind == "pandas":
        return pd.DataFrame({"messages": cells, "id": list(range(len(cells)))})
    # An Arrow column has one type: every cell is JSON text there (a number is the text "5").
    return pa.table({"messages": [c if isinstance(c, str) else json.dumps(c) for c in cells], "id": [0, 1, 2]})


def assert_rows(statuses: list[str | None], expected: list[str], errors: list[Any]) -> None:
    assert statuses == expected
    for status, error in zip(statuses, errors):
        assert (status == "invalid") == bool(error), (status, error)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("kind", ["dict", "pandas", "arrow"])
def test_guard_predictor_gives_a_bad_row_an_invalid_row_in_place(predictor, kind, bad, position):
    rows, expected = batch_with(BAD[bad], position)
    cells = [as_cell(r) if i != position or bad == "oversized" else r for i, r in enumerate(rows)]
    out = predictor(batch_in(kind, cells))
    assert out.column("id").to_pylist() == [0, 1, 2]
    assert out.column("safe").to_pylist()[position] is None  # never true for a row that was not checked
    assert_rows(out.column("status").to_pylist(), expected, out.column("error").to_pylist())


def test_guard_predictor_keeps_columns_arrow_cannot_type(predictor):
    """A kept column mixing kinds of values (here ``id``) is kept as JSON text, never an error for the batch."""
    out = predictor({"messages": [as_cell(GOOD[0]), as_cell(GOOD[1])], "id": [7, {"x": 1}], "error": [None, 3]})
    assert out.column("id").to_pylist() == ["7", '{"x": 1}']
    assert out.column("status").to_pylist() == ["safe", "invalid"] and out.column("error").to_pylist()[1] == "3"


def jsonl_line(value: Any) -> str:
    return json.dumps({"messages": value, "unsafe": False})


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("bad", list(BAD))
def test_local_engine_gives_a_bad_row_an_invalid_row_in_place(factory, tmp_path, bad, position):
    rows, expected = batch_with(BAD[bad], position)
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(jsonl_line(r) for r in rows) + "\n")
    summary = moderate(
        source, tmp_path / "out.jsonl", guard_factory=factory, batch_size=3, max_line_bytes=LIMIT, progress=False
    )
    out = read_rows(tmp_path / "out.jsonl")
    assert summary.invalid == 1 and [r["line"] for r in out] == [1, 2, 3]
    assert_rows([r["status"] for r in out], expected, [r["error"] for r in out])


def test_evaluate_lists_bad_rows_and_scores_the_others(factory, tmp_path):
    from llamaguard_guardrails.evaluation import evaluate

    lines = [json.dumps({"messages": GOOD[0], "unsafe": False}), json.dumps({"messages": GOOD[1], "unsafe": True})]
    lines[1:1] = [jsonl_line(value) for value in BAD.values() if not isinstance(value, str)]
    source = tmp_path / "labelled.jsonl"
    source.write_text("\n".join(lines) + "\n")
    report = evaluate(source, guard_factory=factory, progress=False)
    (policy,) = report.policies
    assert policy.scored == 2 and len(policy.undecided) == len(lines) - 2
    assert {u.kind for u in policy.undecided} == {"invalid"}


def test_ray_engine_gives_every_bad_row_an_invalid_row_in_place(ray_factory, tmp_path):
    ray = pytest.importorskip("ray")
    rows, expected = [], []
    for n, value in enumerate(BAD.values()):  # every kind, at a different position of its batch of 3
        batch, statuses = batch_with(value, n % 3)
        rows += batch
        expected += statuses
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(jsonl_line(r) for r in rows) + "\n")
    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=128 * 1024**2, logging_level="ERROR")
    try:
        moderate(
            source,
            tmp_path / "out.jsonl",
            guard_factory=ray_factory,
            engine="ray",
            num_workers=1,
            batch_size=3,
            max_line_bytes=LIMIT,
            progress=False,
        )
    finally:
        ray.shutdown()
    out = read_rows(tmp_path / "out.jsonl")
    assert [r["line"] for r in out] == list(range(1, len(rows) + 1))
    assert_rows([r["status"] for r in out], expected, [r["error"] for r in out])


# -- the in-process vLLM engine: one unreadable model output fails its own row ----------------------------

TOKENS = AnswerTokens(safe=11, unsafe=12, blank=13, newline=14, eot=15)


class FakeLLM:
    """``vllm.LLM.generate`` answering "safe" for every prompt, except no log probabilities for a prompt whose
    text holds BROKEN (the output a real engine gives for a prompt it could not score)."""

    def __init__(self, builder: Any) -> None:
        self.builder = builder

    def generate(self, inputs: list[dict[str, Any]], params: dict[str, Any], use_tqdm: bool = True) -> list[Any]:
        outputs = []
        for item in inputs:
            broken = "BROKEN" in self.builder.decode(item["prompt_token_ids"])
            top = {11: 0.95, 12: 0.03, 13: 0.01, 99: 0.001}  # safe, unsafe, blank, another token
            logprobs = None if broken else [{t: SimpleNamespace(logprob=math.log(p)) for t, p in top.items()}]
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(text="safe", logprobs=logprobs)]))
        return outputs


@pytest.mark.parametrize("position", POSITIONS)
def test_vllm_engine_fails_only_the_row_whose_output_is_unreadable(monkeypatch, builder, position):
    from llamaguard_guardrails.backends.vllm import VLLMEngineBackend

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(SamplingParams=lambda **kw: kw))
    guard = LlamaGuard(VLLMEngineBackend(FakeLLM(builder), TOKENS), builder, cache_size=0, micro_batching=False)
    texts = ["bread", "more bread", "even more bread"]
    texts[position] = "BROKEN output"
    verdicts = guard.classify_batch(texts, policy=Policy(), batch_size=3)
    assert [v.status for v in verdicts] == ["error" if n == position else "safe" for n in range(3)]
    assert "VLLMResponseError" in verdicts[position].error and not verdicts[position].safe


# -- cells that cost more than their look: nested past the parser, text in structs, compressed Parquet ------------


def deeply_nested(depth: int = 5000) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        node.append([])
        node = node[0]
    return root


STRUCT_OVERSIZED = [{"role": "user", "content": "bread " * LIMIT}]  # message structs (no JSON text) over the limit
CELL_BOMBS: dict[str, Any] = {"nested too deeply": deeply_nested(), "oversized structs": STRUCT_OVERSIZED}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("bad", list(CELL_BOMBS))
@pytest.mark.parametrize("kind", ["dict", "pandas"])
def test_guard_predictor_gives_a_cell_bomb_an_invalid_row_in_place(predictor, kind, bad, position):
    """A cell nested past Python's recursion limit failed the whole batch (RecursionError) before any row was read;
    message structs had no row limit at all (only JSON text had)."""
    rows, expected = batch_with(CELL_BOMBS[bad], position)
    cells = [as_cell(r) if i != position else r for i, r in enumerate(rows)]
    out = predictor(batch_in(kind, cells))
    assert out.column("id").to_pylist() == [0, 1, 2]
    assert_rows(out.column("status").to_pylist(), expected, out.column("error").to_pylist())
    assert "limit" in out.column("error").to_pylist()[position] or "nested" in out.column("error").to_pylist()[position]


def write_parquet(path: Path, cells: list[Any], **options: Any) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"messages": cells, "id": list(range(len(cells)))}), path, **options)
    return path


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("shape", ["json text", "structs"])
def test_moderate_applies_its_row_limit_to_parquet_cells(factory, tmp_path, shape, position, monkeypatch):
    """``max_line_bytes`` bounded JSONL lines only: a Parquet cell over it (JSON text or message structs) was
    checked whole. Now it is an invalid row in its place, with the limit the run was given."""
    monkeypatch.setattr(records_module, "MAX_LINE_BYTES", 64 * 1024 * 1024)  # the default: the run's limit decides
    big = [{"role": "user", "content": "bread " * LIMIT}]
    rows, expected = batch_with(big, position)
    cells = [json.dumps(r) for r in rows] if shape == "json text" else rows
    source = write_parquet(tmp_path / "in.parquet", cells, compression="zstd")
    moderate(source, tmp_path / "out.jsonl", guard_factory=factory, max_line_bytes=LIMIT, progress=False)
    out = read_rows(tmp_path / "out.jsonl")
    assert [r["line"] for r in out] == [1, 2, 3] and [r["id"] for r in out] == [0, 1, 2]
    assert_rows([r["status"] for r in out], expected, [r["error"] for r in out])
    assert "limit" in out[position]["error"]


@pytest.mark.parametrize("cell_bytes", [10, 1_000, 100_000, 3_000_000])
def test_parquet_is_decoded_in_batches_of_about_one_row_limit(tmp_path, cell_bytes, monkeypatch):
    """Compressed, dictionary-encoded Parquet decodes to far more than its size (here 600 equal rows of
    ``cell_bytes`` each, one dictionary value): a batch decodes to one row limit at most, or to one row."""
    import pyarrow.parquet as pq

    limit = 64 * 1024
    cells = [json.dumps([{"role": "user", "content": "a" * cell_bytes}])] * 600
    source = write_parquet(tmp_path / "in.parquet", cells, compression="zstd", row_group_size=600)
    decoded: list[int] = []
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        for batch in iter_batches(self, *args, **kwargs):
            decoded.append(batch.nbytes)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    records = list(records_module.read_records(source, max_line_bytes=limit))
    assert len(records) == 600
    assert all((r.error is None) == (cell_bytes < limit) for r in records)
    assert max(decoded) <= max(limit, cell_bytes) + 8 * 1024 + 4096  # one limit a batch (offsets aside), or one row


# -- labelled rows (evaluate): a hostile label is that row's problem, never the run's --------------------------

DEEP_JSON = "[" * 100_000 + "]" * 100_000
BIG_NUMBER = "1" * 5000  # past Python's 4,300-digit limit for int(): a ValueError, not a JSONDecodeError
LABEL_BOMBS = {
    "number past the digit limit in unsafe": '{"messages": [], "unsafe": ' + BIG_NUMBER + "}",
    "number past the digit limit elsewhere": '{"messages": [], "unsafe": true, "n": ' + BIG_NUMBER + "}",
    "nested too deeply": '{"messages": [], "unsafe": true, "x": ' + DEEP_JSON + "}",
    "repeated key": '{"messages": [], "unsafe": true, "unsafe": false}',
    "NaN": '{"messages": [], "unsafe": NaN}',
    "long categories": json.dumps({"messages": [], "unsafe": True, "categories": "S9 " * 100_000}),
}
PARQUET_CATEGORY_BOMBS = {"number past the digit limit": "[" + BIG_NUMBER + "]", "nested too deeply": DEEP_JSON}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("bad", list(LABEL_BOMBS))
def test_a_hostile_jsonl_label_is_a_problem_row_in_place(tmp_path, bad, position, monkeypatch):
    """A number past Python's digit limit raised a plain ValueError that failed the whole evaluation."""
    from llamaguard_guardrails.evaluation.labels import read_labels

    monkeypatch.setattr(records_module, "MAX_LINE_BYTES", 64 * 1024 * 1024)  # read each line: not over the limit

    lines = [json.dumps({"messages": GOOD[0], "unsafe": False}), json.dumps({"messages": GOOD[1], "unsafe": True})]
    lines.insert(position, LABEL_BOMBS[bad])
    source = tmp_path / "labelled.jsonl"
    source.write_text("\n".join(lines) + "\n")
    labels = read_labels(source, {"S9"})
    assert [label.line for label in labels] == [1, 2, 3]
    assert [label.problem is not None for label in labels] == [i == position for i in range(3)]
    assert [label.unsafe for i, label in enumerate(labels) if i != position] == [False, True]
    assert len(labels[position].problem) < 400  # names the problem, does not copy the value


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("bad", list(PARQUET_CATEGORY_BOMBS))
def test_a_hostile_parquet_label_is_a_problem_row_in_place(tmp_path, bad, position):
    import pyarrow.parquet as pq

    from llamaguard_guardrails.evaluation.labels import read_labels

    categories = ['["S9"]', "[]"]
    categories.insert(position, PARQUET_CATEGORY_BOMBS[bad])
    table = pa.table({"messages": ["[]"] * 3, "unsafe": [True] * 3, "categories": categories})
    pq.write_table(table, tmp_path / "labelled.parquet")
    labels = read_labels(tmp_path / "labelled.parquet", {"S9"})
    assert [label.problem is not None for label in labels] == [i == position for i in range(3)]
    assert len(labels[position].problem) < 400


def test_a_policy_file_with_a_number_past_the_digit_limit_is_an_invalid_policy(tmp_path):
    from llamaguard_guardrails import InvalidPolicyError
    from llamaguard_guardrails.evaluation.policies import load_policy

    path = tmp_path / "policy.json"
    path.write_text('{"threshold": ' + BIG_NUMBER + "}")
    with pytest.raises(InvalidPolicyError, match="policy file"):
        load_policy(path)
