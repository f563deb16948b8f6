"""``get_provider_spec()`` of the conformance safety provider (imported by ``llama stack run``)."""

from __future__ import annotations

from typing import Any

PROVIDER_TYPE = "inline::conformance-guard"


def get_provider_spec() -> Any:
    from llama_stack_api import Api, InlineProviderSpec

    return InlineProviderSpec(
        api=Api.safety,
        provider_type=PROVIDER_TYPE,
        module="conformance_guard",
        config_class="llamaguard_guardrails.llama_stack.provider.config.LlamaGuardProviderConfig",
        api_dependencies=[],
        description="llamaguard-guardrails' safety provider with a scripted model step (conformance tests).",
    )
