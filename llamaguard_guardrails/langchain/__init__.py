"""LangChain adapter: guard chains, tools and agents with Llama Guard 4.

Needs the ``langchain`` extra: ``pip install "llamaguard-guardrails[langchain]"`` (langchain-core
1.8, langchain 1.5, langgraph 1.2).

- :class:`LlamaGuardRunnable`: a guard step for LCEL pipes (input or output).
- :func:`guard_chain`: wrap any Runnable so its input and its output (in context) are checked,
  for invoke / ainvoke / batch / abatch / stream / astream.
- :func:`guard_tool` / :func:`guard_tools`: tools whose arguments and results are checked.
- :class:`LlamaGuardMiddleware`: agent middleware for ``langchain.agents.create_agent``.
- :class:`LlamaGuardDecisionModel`: a ``BaseDecisionModel`` (e.g. for ``AutoModeMiddleware``).
- :class:`LlamaGuardCallbackHandler` / :class:`AsyncLlamaGuardCallbackHandler`: hard stop + audit.

Every adapter takes an already loaded :class:`~llamaguard_guardrails.LlamaGuard`; share one.
"""

try:
    import langchain.agents.middleware  # noqa: F401
    import langchain_core.decisions  # noqa: F401
    import langgraph  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "llamaguard_guardrails.langchain needs LangChain (langchain-core>=1.8,<1.9, langchain>=1.5,<1.6, "
        f'langgraph>=1.2,<1.3): pip install "llamaguard-guardrails[langchain]" ({exc})'
    ) from exc

from ..enforce import DEFAULT_REFUSAL
from ._common import blocked_verdict, verdict_metadata
from .callbacks import AsyncLlamaGuardCallbackHandler, LlamaGuardCallbackHandler, VerdictRecord
from .convert import message_to_openai, to_messages
from .decision import LlamaGuardDecisionModel
from .middleware import LlamaGuardMiddleware
from .runnables import GuardedChain, LlamaGuardRunnable, guard_chain
from .stream import StreamWindow
from .tools import GuardedTool, guard_tool, guard_tools

__all__ = [
    "DEFAULT_REFUSAL",
    "AsyncLlamaGuardCallbackHandler",
    "GuardedChain",
    "GuardedTool",
    "LlamaGuardCallbackHandler",
    "LlamaGuardDecisionModel",
    "LlamaGuardMiddleware",
    "LlamaGuardRunnable",
    "StreamWindow",
    "VerdictRecord",
    "blocked_verdict",
    "guard_chain",
    "guard_tool",
    "guard_tools",
    "message_to_openai",
    "to_messages",
    "verdict_metadata",
]
