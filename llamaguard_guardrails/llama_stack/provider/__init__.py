"""The inline safety provider Llama Stack loads: its spec and its factory (Llama Stack's provider layout).

A run config names it with ``module: llamaguard_guardrails.llama_stack``: Llama Stack imports
``llamaguard_guardrails.llama_stack.provider`` and calls :func:`get_provider_spec`; the spec points back here,
so :func:`get_provider_impl` builds the implementation (:mod:`.impl`) from its config (:mod:`.config`).
Importing this module needs no llama-stack; each function imports what it uses.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import LlamaGuardProviderConfig
    from .impl import LlamaGuardSafetyImpl

PROVIDER_TYPE = "inline::llamaguard-guardrails"
MODULE = "llamaguard_guardrails.llama_stack.provider"
CONFIG_CLASS = "llamaguard_guardrails.llama_stack.provider.config.LlamaGuardProviderConfig"
SUPPORTED = "0.7"


def check_llama_stack_version() -> str:
    """The installed llama-stack version; raises ``RuntimeError`` unless it is 0.7.x."""
    try:
        installed = version("llama-stack")
    except PackageNotFoundError as exc:
        raise RuntimeError("llama-stack is not installed: pip install 'llamaguard-guardrails[llama-stack]'") from exc
    if installed.split(".")[:2] != SUPPORTED.split("."):
        raise RuntimeError(
            f"llamaguard-guardrails supports llama-stack {SUPPORTED}.x (tested with 0.7.3), found {installed}: "
            "0.2.x-0.6.x use other API packages and another run_shield signature"
        )
    return installed


def get_provider_spec() -> Any:
    """The inline safety provider spec: no API dependencies (the model is loaded in-process)."""
    check_llama_stack_version()
    from llama_stack_api import Api, InlineProviderSpec

    return InlineProviderSpec(
        api=Api.safety,
        provider_type=PROVIDER_TYPE,
        module=MODULE,
        config_class=CONFIG_CLASS,
        pip_packages=["llamaguard-guardrails[llama-stack]"],
        api_dependencies=[],
        description="Llama Guard 4 loaded in-process by llamaguard-guardrails: shields and moderations "
        "with no inference provider.",
    )


async def get_provider_impl(config: LlamaGuardProviderConfig, deps: dict[Any, Any]) -> LlamaGuardSafetyImpl:
    """Called by Llama Stack for an inline provider: build the implementation and load the model."""
    from .config import LlamaGuardProviderConfig
    from .impl import LlamaGuardSafetyImpl

    check_llama_stack_version()
    if not isinstance(config, LlamaGuardProviderConfig):
        raise TypeError(f"expected LlamaGuardProviderConfig, got {type(config).__name__}")
    impl = LlamaGuardSafetyImpl(config)
    await impl.initialize()
    return impl
