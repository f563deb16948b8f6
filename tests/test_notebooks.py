"""The notebooks run top to bottom on the test model, offline, and are committed without outputs.

Each notebook is executed with nbclient in the ``python3`` kernel of this environment, with
``notebooks/`` as the working directory. The quickstart runs as a new user would (no
``LLAMAGUARD_MODEL``: it builds the test model itself); the others get the session's test model
through ``LLAMAGUARD_MODEL``, as a user with downloaded weights would point them at Llama Guard 4.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def _kernel_temp_dir(monkeypatch, tmp_path):
    """The kernel's ``tempfile`` folders (the quickstart's own test model, ~130 MB) go under pytest's temporary
    folder, which pytest prunes, not into the system's /tmp, where one was left by every run."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def execute(name: str) -> nbformat.NotebookNode:
    """Run every cell of ``notebooks/NAME``; a failing cell raises ``CellExecutionError`` with its traceback."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def text_of(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook printed or displayed as text, in order."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def has_plot(notebook: nbformat.NotebookNode) -> bool:
    """True when a matplotlib figure was rendered (inline, as a PNG)."""
    return any(
        "image/png" in output.get("data", {}) and output.data.get("text/plain", "").startswith("<Figure")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def test_the_notebooks_are_there():
    assert ALL == [
        "01_quickstart.ipynb",
        "02_langchain_agent.ipynb",
        "03_llama_stack.ipynb",
        "04_evaluate.ipynb",
        "05_human_review.ipynb",
    ]


def test_the_python3_kernel_is_this_environment():
    """nbclient must run the notebooks with this interpreter (ipykernel installed here), not another Python."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    # jupyter_client runs a spec whose argv[0] is a bare "python"/"python3"/"python3.X" with sys.executable
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    assert argv0 in bare or Path(argv0).resolve() == Path(sys.executable).resolve(), (
        f"the python3 kernel runs {argv0}, not {sys.executable}: "
        "run `python -m ipykernel install --sys-prefix` in this environment"
    )


@pytest.mark.parametrize("name", ALL)
def test_committed_notebooks_have_no_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for n, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {n} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{name} cell {n} has an execution count: strip outputs"


@pytest.mark.notebooks
def test_quickstart_runs_on_the_test_model_it_builds(monkeypatch):
    monkeypatch.delenv("LLAMAGUARD_MODEL", raising=False)
    notebook = execute("01_quickstart.ipynb")
    printed = text_of(notebook)
    assert "WARNING: this is the random-weight TEST model" in printed
    assert re.search(r"verdict: (safe|unsafe: S\d+ [A-Z][\w -]+) \(p_unsafe=[01]\.\d{3}\)", printed)
    assert "checked role: Agent" in printed
    # the threshold decides (threshold 0 blocks: unsafe, or a guard error if the random model garbles its categories)
    assert re.search(r"threshold 0\.0: (unsafe|blocked)", printed) and "threshold 1.0: safe" in printed
    assert "[code interpreter call: python]" in printed  # a code tool call is shown as code (S14)
    assert "S15: Medical Advice." in printed and "S6: Specialized Advice." not in printed  # the custom policy
    assert "InvalidPolicyError: invalid policy" in printed
    assert "S14 in the prompt with an image: False" in printed
    assert "async and batch verdicts agree: True" in printed
    assert re.search(r"\d+ verdicts recorded", printed) and "audit file: 1 line(s)" in printed
    assert "blocked: guard error: GuardTimeoutError" in printed and "status: error | safe: False" in printed
    assert has_plot(notebook)  # the plot of unsafe probabilities


@pytest.mark.notebooks
def test_langchain_agent_notebook_blocks_at_every_stage(monkeypatch, test_model_dir):
    pytest.importorskip("langchain")
    monkeypatch.setenv("LLAMAGUARD_MODEL", str(test_model_dir))
    printed = text_of(execute("02_langchain_agent.ipynb"))
    assert "tools run: [\"get_weather('Paris')\"]" in printed  # the safe round trip ran the tool
    assert "^ BLOCKED at input: S9 Indiscriminate Weapons" in printed and "model calls: 0" in printed
    assert "^ BLOCKED at output: S14 Code Interpreter Abuse" in printed
    assert "^ BLOCKED at tool_call: S14 Code Interpreter Abuse" in printed
    assert "^ BLOCKED at output: S1 Violent Crimes" in printed
    assert printed.count("tools run: []") == 2  # the dangerous code never ran
    # windowed streaming: checked text released, then the refusal; the unsafe sentence never shows
    assert "⟨output check: unsafe⟩I can't help with that." in printed
    released = re.sub(r"⟨[^⟩]*⟩", "", printed)  # the streamed text without the check markers
    assert "She wrote careful notes" in released and "how to make a poison" not in released
    # the same wiring on the loaded (test) model, outcomes forced by the policy threshold
    assert "WARNING: random-weight TEST model" in printed
    after_real = printed[printed.index("with Policy(threshold=1.0)") :]
    assert "AIMessage     'It is sunny in Paris.'" in after_real and "^ BLOCKED at input:" in after_real


@pytest.mark.notebooks
def test_llama_stack_notebook_runs_the_shield_in_process(monkeypatch, test_model_dir):
    pytest.importorskip("llama_stack")
    pytest.importorskip("llama_stack_client")
    if importlib.util.find_spec("nest_asyncio") is None:  # llama-stack imports it in a Jupyter kernel
        pytest.fail("LlamaStackAsLibraryClient needs nest-asyncio inside Jupyter: install the 'notebooks' extra")
    monkeypatch.setenv("LLAMAGUARD_MODEL", str(test_model_dir))
    printed = text_of(execute("03_llama_stack.ipynb"))
    assert "lg4-pass-all  violation: None" in printed
    assert "lg4-block-all violation: error - " in printed and '"test_model": true' in printed
    assert "refused: shield 'lg4-typo': unknown shield param(s) ['threshhold']" in printed
    assert "lg4-pass-all flagged: False" in printed and "flagged: True" in printed
    assert "'How do I build a bomb?'         -> BLOCKED at input: ['S9'] (the server was never reached)" in printed
    assert "-> BLOCKED at tool_call: ['S14']" in printed and "-> BLOCKED at output: ['S9']" in printed
    assert "(finish_reason=content_filter)" in printed
    assert "-> answer: 'Bread needs flour, water, salt and yeast.' (finish_reason=stop)" in printed


@pytest.mark.notebooks
def test_human_review_notebook_pauses_approves_and_traces(monkeypatch, test_model_dir):
    pytest.importorskip("langchain")
    pytest.importorskip("opentelemetry.sdk")
    monkeypatch.setenv("LLAMAGUARD_MODEL", str(test_model_dir))
    printed = text_of(execute("05_human_review.ipynb"))
    assert "PAUSED: send_email" in printed and "emails sent while paused: []" in printed
    assert "outcome: review | categories: ['S7'] | p_unsafe: 0.40" in printed
    assert "emails sent after approval: [('me@home.example'" in printed and "agent: I sent the list." in printed
    assert re.search(r"stage=tool_call +outcome=review +p=0\.40 categories=\['S7'\]", printed)
    assert "stage=input" in printed and "content on any span: False" in printed
    assert "['th'] trusted: True | outcome: allow" in printed and "['sw'] trusted: False | outcome: review" in printed
