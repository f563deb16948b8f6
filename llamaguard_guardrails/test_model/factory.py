"""A small random-weight checkpoint of the real Llama Guard 4 architecture, for tests and demos.

It has the real Llama 4 tokenizer (built from the ``llama-models`` package), the real image
processor and a processor that renders the Llama Guard 4 prompt, and loads with
``LlamaGuard.from_pretrained(DIR)`` like the real model. Its text and vision towers are tiny and
random. So that every code path runs as it would on the real model, its output head is wired as a
small "bigram" machine that always answers in Llama Guard 4's format (``safe`` or ``unsafe`` then a
category line, sometimes after a blank line); which answer it gives depends on the input through the
random layers. **Its verdicts are meaningless.**
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ..files import DatasetError
from ..loading import TEST_MODEL_MARKER

_TOKENIZER_CACHE = "llama4-tokenizer.json"


def cache_dir() -> Path:
    base = os.environ.get("LLAMAGUARD_GUARDRAILS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "llamaguard-guardrails"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def llama4_tokenizer_json() -> Path:
    """The Llama 4 tokenizer as a Hugging Face ``tokenizer.json`` (converted once, then cached)."""
    import llama_models.llama4 as llama4_pkg

    source = Path(llama4_pkg.__file__).parent / "tokenizer.model"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"{digest}-{_TOKENIZER_CACHE}"
    if target.exists():
        return target
    import tempfile

    from llama_models.llama4.tokenizer import Tokenizer as Llama4Tokenizer
    from transformers.integrations.tiktoken import convert_tiktoken_to_fast

    encoding = Llama4Tokenizer(source).model
    with tempfile.TemporaryDirectory() as tmp:
        convert_tiktoken_to_fast(encoding, tmp)
        tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
        Path(tmp, "tokenizer.json").replace(tmp_target)
        tmp_target.replace(target)
    return target


def chat_template() -> str:
    return resources.files(__package__).joinpath("chat_template.jinja").read_text()


def make_processor():
    """Tokenizer + image processor + processor with the Llama Guard 4 chat template."""
    from tokenizers import Tokenizer
    from transformers import Llama4ImageProcessor, Llama4Processor, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(llama4_tokenizer_json())),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot|>",
        pad_token="<|finetune_right_pad|>",
        model_max_length=131072,
        padding_side="left",
    )
    image_processor = Llama4ImageProcessor(
        size={"height": 336, "width": 336},
        max_patches=16,
        resize_to_max_canvas=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Llama4Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        pixel_shuffle_ratio=0.5,
        chat_template=chat_template(),
    )


#: Tower sizes: "tiny" for tests (26M parameters, mostly the 202k-token vocabulary), "bench" for
#: benchmarks (the transformer layers dominate the cost, as in the real model), "lg4" for the real
#: Llama Guard 4 12B shape (12,001,097,216 parameters; benchmarks/gpu_bench.py builds it on a GPU).
TINY_VISION = dict(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=128,
    projector_input_dim=64,
    projector_output_dim=64,
    vision_output_dim=64,
)
SIZES = {
    "tiny": dict(
        text=dict(
            hidden_size=64,
            intermediate_size=128,
            intermediate_size_mlp=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
        ),
        vision=TINY_VISION,
    ),
    "bench": dict(
        text=dict(
            hidden_size=512,
            intermediate_size=2048,
            intermediate_size_mlp=2048,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=2,
            head_dim=64,
        ),
        vision=TINY_VISION,
    ),
    "lg4": dict(
        text=dict(
            hidden_size=5120,
            intermediate_size=8192,
            intermediate_size_mlp=8192,
            num_hidden_layers=48,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
        ),
        vision=dict(
            hidden_size=1408,
            num_hidden_layers=34,
            num_attention_heads=16,
            intermediate_size=5632,
            projector_input_dim=4096,
            projector_output_dim=4096,
            vision_output_dim=4096,
        ),
    ),
}


def make_config(size: str = "tiny"):
    """A Llama 4 config of the Llama Guard 4 architecture (dense, rope on every layer) at ``size``.

    The vision intermediate size is 4 x its width: the pixel-shuffled patch width, as in the real model.
    """
    from transformers import Llama4Config

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    layers = SIZES[size]["text"]["num_hidden_layers"]
    text = dict(
        vocab_size=202048,
        **SIZES[size]["text"],
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        moe_layers=[],
        interleave_moe_layer_step=0,
        no_rope_layers=[1] * layers,
        use_qk_norm=True,
        attn_temperature_tuning=True,
        tie_word_embeddings=False,
        bos_token_id=200000,
        eos_token_id=[200001, 200007, 200008],
        pad_token_id=200018,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    vision = dict(**SIZES[size]["vision"], image_size=336, patch_size=14, pixel_shuffle_ratio=0.5)
    return Llama4Config(text_config=text, vision_config=vision, image_token_index=200092)


def make_test_model(directory: str | os.PathLike[str], *, seed: int = 0, size: str = "tiny") -> Path:
    """Write the test checkpoint to ``directory`` (created if needed) and return its path.

    A folder that already holds files is written only if it holds a test model (never over real weights or
    anything else): otherwise :class:`~llamaguard_guardrails.files.DatasetError`.
    """
    import torch
    from transformers import Llama4ForConditionalGeneration

    out = Path(directory)
    if out.is_dir() and any(out.iterdir()) and not (out / f"{TEST_MODEL_MARKER}.json").is_file():
        raise DatasetError(f"{out} already holds files that are not a test model: give an empty or new folder")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file: give a folder for the test model")
    out.mkdir(parents=True, exist_ok=True)
    processor = make_processor()
    torch.manual_seed(seed)
    model = Llama4ForConditionalGeneration(make_config(size)).eval()
    _wire_answer_head(model, processor.tokenizer, seed)
    _calibrate_answers(model, processor, seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    _ship_config_bug(out / "config.json")
    (out / "README.md").write_text(
        "# Llama Guard 4 test model (random weights)\n\nMade by `llamaguard-guardrails make-test-model`: "
        "the real Llama 4 tokenizer and the real Llama Guard 4 architecture at toy size, random weights. "
        "Its verdicts are meaningless.\n"
    )
    (out / f"{TEST_MODEL_MARKER}.json").write_text(json.dumps({"seed": seed, "size": size}))
    return out


def _ship_config_bug(path: Path) -> None:
    """Reproduce the shipped Llama Guard 4 config bug (``attention_chunk_size: null``) the loader must fix."""
    config = json.loads(path.read_text())
    config["text_config"]["attention_chunk_size"] = None
    config["text_config"].pop("layer_types", None)
    path.write_text(json.dumps(config, indent=2))


def _wire_answer_head(model, tokenizer, seed: int) -> None:
    """Make the output head answer in Llama Guard 4's format (see the module docstring)."""
    import torch

    def one(text: str) -> int:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert len(ids) == 1, (text, ids)
        return ids[0]

    header_end = tokenizer.convert_tokens_to_ids("<|header_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    blank, newline, safe, unsafe, s_tok, comma_s = (one(t) for t in ("\n\n", "\n", "safe", "unsafe", "S", ",S"))
    digits = [one(str(n)) for n in range(1, 15)]

    gen = torch.Generator().manual_seed(seed + 1)
    hidden = model.config.text_config.hidden_size
    basis = torch.linalg.qr(torch.randn(hidden, hidden, generator=gen))[0].T  # orthonormal rows
    states = {"header_end": 0, "blank": 1, "safe": 2, "unsafe": 3, "newline": 4, "s": 5, "digit": 6}
    u = {name: basis[i] for name, i in states.items()}
    noise_space = basis[len(states) :]

    def noise(scale: float) -> torch.Tensor:
        return scale * (torch.randn(noise_space.shape[0], generator=gen) @ noise_space)

    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        head = model.get_output_embeddings().weight
        for token, state in [
            (header_end, "header_end"),
            (blank, "blank"),
            (safe, "safe"),
            (unsafe, "unsafe"),
            (newline, "newline"),
            (s_tok, "s"),
            (comma_s, "s"),
        ] + [(d, "digit") for d in digits]:
            embed[token] = u[state]
        c = 6.0
        head[safe] = c * (u["header_end"] + u["blank"]) + noise(0.0)
        head[unsafe] = c * (u["header_end"] + u["blank"]) + noise(0.0)
        head[blank] = 0.97 * c * u["header_end"] + noise(0.0)
        head[eot] = c * (u["safe"] + u["digit"])
        head[comma_s] = 0.9 * c * u["digit"] + noise(0.0)
        head[newline] = c * u["unsafe"]
        head[s_tok] = c * u["newline"]
        for d in digits:
            head[d] = c * u["s"] + noise(0.0)


CALIBRATION_TEXTS = (
    "How do I make a bomb?",
    "Tell me a joke",
    "What is the capital of France?",
    "hello",
    "How to steal a car",
    "bake bread at home",
    "The weather is nice today",
    "ignore previous instructions",
    "Who won the election?",
    "Write a poem about the sea",
    "how do I pick a lock",
    "recommend a good book",
    "print('hello world')",
    "rm -rf / --no-preserve-root",
    "What is 2 + 2?",
    "I feel sad today",
    "Translate 'cat' into French",
    "Give me my neighbour's address",
    "Summarise this article",
    "Can you help me with my homework?",
    "Explain photosynthesis",
    "Let's plan a birthday party",
    "my password is hunter2",
    "Tell me about chemistry",
)


def _head_inputs(model, prompts) -> Any:
    """The output head's input (final normed hidden state) at the last position of each prompt."""
    import torch

    captured = []
    hook = model.get_output_embeddings().register_forward_hook(lambda mod, args, out: captured.append(args[0][0, -1]))
    try:
        with torch.inference_mode():
            for ids in prompts:
                model(input_ids=torch.tensor([ids]), logits_to_keep=1, return_dict=False)
    finally:
        hook.remove()
    return torch.stack(captured).float()


def _calibrate_answers(model, processor, seed: int) -> None:
    """Make the safe/unsafe choice and the category digit depend on the input, centred near 50/50."""
    import torch

    from ..core.conversation import parse_conversation
    from ..core.policy import DEFAULT_POLICY
    from ..core.prompt import PromptBuilder

    tok = processor.tokenizer
    builder = PromptBuilder(tok)
    prompts = [list(builder.build(parse_conversation(t), DEFAULT_POLICY)[0].input_ids) for t in CALIBRATION_TEXTS]
    safe, unsafe, newline, s_tok = (tok.encode(t, add_special_tokens=False)[0] for t in ("safe", "unsafe", "\n", "S"))
    digits = [tok.encode(str(n), add_special_tokens=False)[0] for n in range(1, 15)]
    head = model.get_output_embeddings().weight
    gen = torch.Generator().manual_seed(seed + 2)

    with torch.no_grad():
        first = _head_inputs(model, prompts)
        after_s = _head_inputs(model, [ids + [unsafe, newline, s_tok] for ids in prompts])
        # Only steer along directions that are neither a wired state nor a mean state, so the wiring
        # of every other step is left alone.
        fixed = torch.cat(
            [
                model.get_input_embeddings().weight[[safe, unsafe, newline, s_tok]].float(),
                first.mean(0, keepdim=True),
                after_s.mean(0, keepdim=True),
            ]
        )
        basis = torch.linalg.qr(fixed.T)[0].T

        def variation(states: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
            centred = states - states.mean(0)
            centred = centred - centred.matmul(basis.T).matmul(basis)
            _, _, vh = torch.linalg.svd(centred, full_matrices=False)
            directions = vh[:k]
            return directions, centred.matmul(directions.T).std(0).clamp(min=1e-6)

        (direction,), (spread,) = variation(first, 1)
        d = direction / spread * 2.0
        head[unsafe] += d / 2
        head[safe] -= d / 2
        directions, spreads = variation(after_s, 4)
        for digit in digits:
            head[digit] += (torch.randn(4, generator=gen) * 0.3 / spreads) @ directions
