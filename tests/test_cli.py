"""The command line contract: exit codes 0 safe / 1 unsafe / 2 bad input, JSON verdicts, exact prompts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llamaguard_guardrails import Policy
from llamaguard_guardrails.cli import main

from conftest import make_image

pytestmark = pytest.mark.usefixtures("processors_read_once")


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


def test_check_exits_3_for_a_verdict_a_human_must_decide(capsys, test_model_dir):
    """The whole probability range is the grey zone here: the verdict is neither allowed nor blocked."""
    argv = ["check", "--model", str(test_model_dir), "--text", "How do I bake bread?", "--json"]
    code, out, _ = run(capsys, *argv, "--threshold", "1", "--review-threshold", "0")
    verdict = json.loads(out)
    assert verdict["outcome"] == "review" and verdict["review_threshold"] == 0.0
    assert code == 3
    code, out, _ = run(capsys, *argv, "--threshold", "1", "--out-of-depth", "block")
    assert code == 0 and json.loads(out)["outcome"] == "allow"  # English: within the model's depth


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


def test_help_is_usable_without_the_readme(capsys):
    code, out, _ = run(capsys, "check", "--help")
    assert code == 0
    for option in ("--model", "--text", "--conversation", "--image", "--exclude", "--threshold", "--json"):
        assert option in out


def test_make_test_model(capsys, tmp_path):
    code, out, _ = run(capsys, "make-test-model", str(tmp_path / "m"), "--seed", "3")
    assert code == 0 and "meaningless" in out
    assert (tmp_path / "m" / "config.json").exists() and (tmp_path / "m" / "tokenizer.json").exists()


# -- every bad input: exit 2, one line on stderr, no traceback ----------------------------------------------


def write(path, data: bytes | str):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def bad_inputs(tmp_path, image: str) -> dict[str, tuple[list[str], str]]:
    """Each case: the command line and a fragment of the one error line it must give."""
    deep = write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    type_list = write(tmp_path / "type.json", json.dumps([{"role": "user", "content": [{"type": ["text"]}]}]))
    deep_args = write(
        tmp_path / "args.json",
        '[{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '
        + '{"a":' * 5000
        + "1"
        + "}" * 5000
        + "}}]}]",
    )
    chat = write(tmp_path / "chat.json", json.dumps([{"role": "user", "content": "hi"}]))
    jsonl = write(tmp_path / "in.jsonl", json.dumps([{"role": "user", "content": "hi"}]) + "\n")
    return {
        "invalid UTF-8": (["check", "--conversation", write(tmp_path / "b.json", b'\xff\xfe["hi"]')], "not UTF-8"),
        "deeply nested JSON": (["check", "--conversation", deep], "nested too deeply"),
        "deeply nested tool arguments": (["check", "--conversation", deep_args], "nested too deeply"),
        "part type is a list": (["check", "--conversation", type_list], "type must be a string"),
        "prompt: part type is a list": (["prompt", "--conversation", type_list], "type must be a string"),
        "prompt: deeply nested JSON": (["prompt", "--conversation", deep], "nested too deeply"),
        "empty --text": (["check", "--text", ""], "--text is empty"),
        "blank --text": (["check", "--text", "  \n"], "--text is empty"),
        "JSON object with --image": (
            ["check", "--conversation", write(tmp_path / "o.json", '{"role": "user"}'), "--image", image],
            "must hold a JSON list of messages",
        ),
        "non-dict message with --image": (
            ["check", "--conversation", write(tmp_path / "s.json", '["hi"]'), "--image", image],
            "must be a JSON object, not a string",
        ),
        "empty conversation with --image": (
            ["check", "--conversation", write(tmp_path / "e.json", "[]"), "--image", image],
            "the conversation is empty",
        ),
        "content a number with --image": (
            [
                "check",
                "--conversation",
                write(tmp_path / "n.json", '[{"role": "user", "content": 3}]'),
                "--image",
                image,
            ],
            "content must be text or a list of parts, not int",
        ),
        "conversation is a folder": (["check", "--conversation", str(tmp_path)], "is a folder"),
        "image is a folder": (["check", "--text", "hi", "--image", str(tmp_path)], "is a folder"),
        "image is not an image": (["check", "--text", "hi", "--image", chat], "not a readable image"),
        "bad --device": (["check", "--text", "hi", "--device", "toaster"], "not a device name"),
        "--threshold not a number": (["check", "--text", "hi", "--threshold", "high"], "invalid float value"),
        "--threshold out of range": (["prompt", "--text", "hi", "--threshold", "2"], "threshold"),
        "--category without a code": (["prompt", "--text", "hi", "--category", "=x"], "must look like"),
        "--exclude unknown": (["prompt", "--text", "hi", "--exclude", "S1,S99"], "unknown category code"),
        "unknown option": (["check", "--text", "hi", "--colour"], "unrecognized arguments: --colour"),
        "--text and --conversation": (["check", "--text", "hi", "--conversation", chat], "not allowed with"),
        "moderate: input is a folder": (["moderate", str(tmp_path), "-o", str(tmp_path / "o.jsonl")], "is a folder"),
        "moderate: output is a folder": (["moderate", jsonl, "-o", str(tmp_path)], "is a folder"),
        "moderate: output is the input": (["moderate", jsonl, "-o", jsonl], "is the input file"),
        "moderate: output format": (["moderate", jsonl, "-o", str(tmp_path / "o.csv")], "unknown format"),
        "moderate: missing input": (["moderate", str(tmp_path / "no.jsonl"), "-o", jsonl + "2"], "does not exist"),
        "moderate: --batch-size 0": (["moderate", jsonl, "-o", str(tmp_path / "o.jsonl"), "--batch-size", "0"], ">= 1"),
        "moderate: --num-workers 0": (
            ["moderate", jsonl, "-o", str(tmp_path / "o.jsonl"), "--num-workers", "0"],
            ">= 1",
        ),
        "moderate: --gpus-per-worker -1": (
            ["moderate", jsonl, "-o", str(tmp_path / "o.jsonl"), "--gpus-per-worker", "-1"],
            "num_gpus_per_worker >= 0",
        ),
        "moderate: --max-line-mb 0": (
            ["moderate", jsonl, "-o", str(tmp_path / "o.jsonl"), "--max-line-mb", "0"],
            "> 0",
        ),
        "moderate: bad --device": (
            ["moderate", jsonl, "-o", str(tmp_path / "o.jsonl"), "--device", "x"],
            "not a device",
        ),
    }


BAD_INPUT_CASES = [
    "invalid UTF-8",
    "deeply nested JSON",
    "deeply nested tool arguments",
    "part type is a list",
    "prompt: part type is a list",
    "prompt: deeply nested JSON",
    "empty --text",
    "blank --text",
    "JSON object with --image",
    "non-dict message with --image",
    "empty conversation with --image",
    "content a number with --image",
    "conversation is a folder",
    "image is a folder",
    "image is not an image",
    "bad --device",
    "--threshold not a number",
    "--threshold out of range",
    "--category without a code",
    "--exclude unknown",
    "unknown option",
    "--text and --conversation",
    "moderate: input is a folder",
    "moderate: output is a folder",
    "moderate: output is the input",
    "moderate: output format",
    "moderate: missing input",
    "moderate: --batch-size 0",
    "moderate: --num-workers 0",
    "moderate: --gpus-per-worker -1",
    "moderate: --max-line-mb 0",
    "moderate: bad --device",
]


def assert_one_error_line(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_every_bad_input_exits_2_with_one_line(capsys, tmp_path, test_model_dir, case):
    image = tmp_path / "photo.png"
    make_image(40, 30).save(image)
    argv, fragment = bad_inputs(tmp_path, str(image))[case]
    code, _, err = run(capsys, argv[0], "--model", str(test_model_dir), *argv[1:])
    assert_one_error_line(code, err, fragment)


def test_other_commands_report_bad_input_on_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "make-test-model", str(tmp_path / "file"))
    assert_one_error_line(code, err, str(tmp_path / "file"))
    code, _, err = run(capsys, "demo", "--model", str(tmp_path / "missing"))
    assert_one_error_line(code, err, "does not exist")
    code, _, err = run(capsys, "moderate", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.jsonl"))
    assert_one_error_line(code, err, "the following arguments are required: --model")
    code, _, err = run(capsys, "frobnicate")
    assert_one_error_line(code, err, "invalid choice: 'frobnicate'")
    code, _, err = run(capsys)
    assert_one_error_line(code, err, "required: COMMAND")


def test_moderate_with_a_missing_model_exits_2_and_writes_nothing(capsys, tmp_path):
    source = write(tmp_path / "in.jsonl", "[]\n")
    out = tmp_path / "o.jsonl"
    code, _, err = run(capsys, "moderate", source, "-o", str(out), "--model", str(tmp_path / "none"), "--no-progress")
    assert_one_error_line(code, err, "no row was written")
    assert not out.exists()


def test_an_empty_text_with_an_image_is_checked(capsys, tmp_path, test_model_dir):
    image = tmp_path / "photo.png"
    make_image(40, 30).save(image)
    code, out, _ = run(capsys, "prompt", "--model", str(test_model_dir), "--text", "", "--image", str(image))
    assert code == 0 and out.count("<|image_start|>") == 1, out


def test_ctrl_c_exits_130_with_one_line(capsys):
    from llamaguard_guardrails.cli.common import run_command

    def interrupted(_args):
        exc = KeyboardInterrupt()
        exc.add_note("out.jsonl holds the rows of lines 1-16")
        raise exc

    assert run_command(interrupted, None) == 130
    assert capsys.readouterr().err == "interrupted: out.jsonl holds the rows of lines 1-16\n"


def test_the_real_process_prints_one_line_for_a_hostile_file(tmp_path, test_model_dir):
    """The installed entry point, logging included: no traceback for JSON nested 100000 deep."""
    deep = write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    result = subprocess.run(
        [sys.executable, "-m", "llamaguard_guardrails.cli", "check", "--model", str(test_model_dir)]
        + ["--conversation", deep],
        capture_output=True,
        text=True,
    )
    assert_one_error_line(result.returncode, result.stderr, "nested too deeply")
