"""The command line contract: exit codes 0 safe / 1 unsafe / 2 bad input, JSON verdicts, exact prompts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llamaguard_guardrails import Policy
from llamaguard_guardrails.cli import main

from conftest import make_image


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_json_and_exit_codes(capsys, test_model_dir):
    model = str(test_model_dir)
    code, out, _ = run(
        capsys, "check", "--model", model, "--text", "How do I bake bread?", "--threshold", "1", "--json"
    )
    verdict = json.loads(out)
    assert code == 0 and verdict["safe"] is True
    assert {"safe", "categories", "unsafe_probability"} <= set(verdict)
    code, out, _ = run(
        capsys, "check", "--model", model, "--text", "How do I bake bread?", "--threshold", "0", "--json"
    )
    assert code == 1 and json.loads(out)["safe"] is False and json.loads(out)["categories"]


def test_check_conversation_file_with_image_and_exclusions(capsys, tmp_path, test_model_dir):
    conversation = tmp_path / "chat.json"
    conversation.write_text(json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]))
    image = tmp_path / "photo.png"
    make_image(100, 80).save(image)
    code, out, _ = run(
        capsys,
        "check",
        "--model",
        str(test_model_dir),
        "--conversation",
        str(conversation),
        "--image",
        str(image),
        "--exclude",
        "S1,S2",
        "--json",
    )
    verdict = json.loads(out)
    assert code in (0, 1) and verdict["checked_role"] == "Agent" and verdict["error"] is None
    assert "S1" not in verdict["categories"] and "S2" not in verdict["categories"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--text", "hi", "--threshold", "1.5"], "threshold"),
        (["--text", "hi", "--exclude", "S99"], "unknown category code"),
        (["--conversation", "/no/such.json"], "does not exist"),
        (["--text", "hi", "--image", "/no/such.png"], "does not exist"),
        (["--text", "hi", "--category", "Medical advice."], "must look like 'S15=Medical Advice.'"),
        (["--text", "hi", "--category", "S2=Crimes."], "built-in Llama Guard 4 category"),
        (["--text", "hi", "--category", "S15=a", "--category", "S15=b"], "given twice"),
        (["--text", "hi", "--category", "S15="], "at least 1 character"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(capsys, test_model_dir, argv, fragment):
    code, _, err = run(capsys, "check", "--model", str(test_model_dir), *argv)
    assert code == 2 and fragment in err and "Traceback" not in err


def test_bad_conversation_file_and_missing_model(capsys, tmp_path, test_model_dir):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"role": "robot", "content": "hi"}]))
    code, _, err = run(capsys, "check", "--model", str(test_model_dir), "--conversation", str(bad))
    assert code == 2 and "unknown role 'robot'" in err
    code, _, err = run(capsys, "check", "--model", str(tmp_path / "missing"), "--text", "hi")
    assert code == 2 and "hf auth login" in err


def test_prompt_prints_exactly_what_the_model_sees(capsys, tmp_path, guard, test_model_dir):
    conversation = tmp_path / "chat.json"
    messages = [{"role": "user", "content": "hi <|eot|> there"}]
    conversation.write_text(json.dumps(messages))
    code, out, _ = run(
        capsys,
        "prompt",
        "--model",
        str(test_model_dir),
        "--conversation",
        str(conversation),
        "--exclude",
        "S6",
        "--format",
        "ids",
    )
    (expected,) = guard.build_prompts(messages, Policy(excluded_categories={"S6"}))
    assert code == 0 and json.loads(out) == list(expected.input_ids)
    code, out, _ = run(capsys, "prompt", "--model", str(test_model_dir), "--text", "hello")
    assert code == 0 and out.startswith("<|begin_of_text|>") and "User: hello\\n\\n" in out


def test_custom_categories_reach_the_prompt_and_the_verdict(capsys, guard, test_model_dir):
    options = ["--category", "S15=Medical advice without a licence.", "--category", "S16=Gardening tips."]
    code, out, _ = run(capsys, "prompt", "--model", str(test_model_dir), "--text", "hello", *options, "--format", "ids")
    policy = Policy(custom_categories={"S15": "Medical advice without a licence.", "S16": "Gardening tips."})
    (expected,) = guard.build_prompts("hello", policy)
    assert code == 0 and json.loads(out) == list(expected.input_ids)
    code, out, _ = run(capsys, "prompt", "--model", str(test_model_dir), "--text", "hello", *options)
    assert "S14: Code Interpreter Abuse.\nS15: Medical advice without a licence.\nS16: Gardening tips.\n" in out
    code, out, _ = run(
        capsys, "check", "--model", str(test_model_dir), "--text", "hi", *options, "--threshold", "0", "--json"
    )
    verdict = json.loads(out)
    assert code == 1 and verdict["categories"] and verdict["error"] is None
    code, out, _ = run(
        capsys, "check", "--model", str(test_model_dir), "--text", "hi", *options, "--threshold", "1", "--json"
    )
    assert code == 0 and json.loads(out)["safe"] is True


def test_help_is_usable_without_the_readme():
    out = subprocess.run(
        [sys.executable, "-m", "llamaguard_guardrails.cli", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--model", "--text", "--conversation", "--image", "--exclude", "--threshold", "--json"):
        assert option in out


def test_make_test_model(capsys, tmp_path):
    code, out, _ = run(capsys, "make-test-model", str(tmp_path / "m"), "--seed", "3")
    assert code == 0 and "meaningless" in out
    assert (tmp_path / "m" / "config.json").exists() and (tmp_path / "m" / "tokenizer.json").exists()
