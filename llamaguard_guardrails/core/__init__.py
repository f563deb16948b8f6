"""The framework-free core: conversation model, policy, prompt, scoring and verdicts.

Nothing under ``core`` imports LangChain, Llama Stack or any other adapter.
"""
