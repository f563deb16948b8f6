"""A Llama Stack safety provider for the conformance suite: the library's own ``LlamaGuardSafetyImpl``
around a guard whose model step is scripted (:mod:`.backend`), so verdicts and faults on the server are
decided by the content of the request.

Loaded by ``llama stack run`` with ``module: conformance_guard`` (this folder's parent on PYTHONPATH).
"""

from __future__ import annotations

from typing import Any


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> Any:
    from llamaguard_guardrails.llama_stack import LlamaGuardSafetyImpl

    from .backend import conformance_guard

    impl = LlamaGuardSafetyImpl(config, guard=conformance_guard(config.model, policy=config.policy()))
    await impl.initialize()
    return impl
