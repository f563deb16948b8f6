"""A forward pass in two parts: the model's body (up to its final norm) and its output head, with the fastest kernel.

The score pass runs the body, then the head at the two positions it needs. Llama Guard 4's head is a
202,048-row matrix, read once per pass: on CPU it costs as much as several transformer layers. The score pass needs full logits (for the softmax)
at two positions per prompt only. Which kernel computes ``hidden @ weight.T`` fastest depends on the device:

- CPU, float32 (MKL): ``weight @ hidden.T`` (one tall product) beats ``F.linear`` (transformers' ``nn.Linear``)
  from two rows on (``benchmarks/bench_guard.py`` times both for 1, 2, 8 and 32 rows on its machine). Exact: only the summation order changes (|logit difference| ~1e-6).
- Everything else (CUDA bf16/fp16 through cuBLAS, bf16 on CPU): ``F.linear``, the layout the libraries tune for.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

#: (device type, dtype) for which ``weight @ hidden.T`` is measured faster than ``F.linear``.
WEIGHT_FIRST = frozenset({("cpu", torch.float32)})


def _cache_argument() -> str:
    """The installed transformers' name for the KV cache argument (and output field): ``cache`` from 5.25, where
    ``past_key_values`` is deprecated (removed from the forward pass in 5.40); ``past_key_values`` before."""
    from transformers.models.llama4.modeling_llama4 import Llama4TextModel

    return "cache" if "cache" in inspect.signature(Llama4TextModel.forward).parameters else "past_key_values"


CACHE_ARGUMENT = _cache_argument()
"""``cache`` or ``past_key_values``: what ``forward`` and ``generate`` take here (see :func:`_cache_argument`)."""


def hidden_states(
    model: Any,
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    past_key_values: Any = None,
    use_cache: bool = False,
    pixel_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Any]:
    """(last hidden states after the final norm, KV cache or None) of ``Llama4ForConditionalGeneration``: its
    forward pass without the output head (image features are merged into the embeddings as transformers does)."""
    embeds = model.get_input_embeddings()(input_ids)
    if pixel_values is not None:
        image = model.get_image_features(pixel_values=pixel_values, return_dict=True).last_hidden_state
        flat = model.multi_modal_projector(image.view(-1, image.size(-1))).to(embeds.device, embeds.dtype)
        where = model.get_placeholder_mask(input_ids, inputs_embeds=embeds, image_features=flat)
        embeds = embeds.masked_scatter(where, flat)
    out = model.language_model.model(
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=use_cache,
        **{CACHE_ARGUMENT: past_key_values},
    )
    return out.last_hidden_state, getattr(out, CACHE_ARGUMENT)


def head_weight(model: Any) -> torch.Tensor | None:
    """The output head's weight when it is a plain bias-free linear layer (else None: call the module)."""
    head = model.get_output_embeddings()
    if type(head) is torch.nn.Linear and head.bias is None:
        return head.weight
    return None


def weight_first(weight: torch.Tensor) -> bool:
    """Whether ``weight @ hidden.T`` is the faster kernel for this weight's device and dtype."""
    return (weight.device.type, weight.dtype) in WEIGHT_FIRST


def logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """The head's logits for ``hidden`` (``(..., hidden_size)`` -> ``(..., vocab)``), with the fastest kernel."""
    weight = head_weight(model)
    if weight is None:
        return model.get_output_embeddings()(hidden)
    if not weight_first(weight):
        return F.linear(hidden, weight)
    rows = hidden.reshape(-1, hidden.shape[-1])
    return (weight @ rows.T).T.reshape(*hidden.shape[:-1], weight.shape[0])


def token_probabilities(model: Any, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (float32) of ``tokens`` at each of ``hidden``'s positions: ``(..., len(tokens))``."""
    return logits(model, hidden).float().softmax(-1).index_select(-1, tokens.to(hidden.device))
