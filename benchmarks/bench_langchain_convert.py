"""LangChain message conversion stays linear in a message's size (the allow-list and the raw-text check).

    python benchmarks/bench_langchain_convert.py

Converts messages of N and 10 N content parts of five shapes (text parts, a provider tool_result holding N
texts, a text block with N extras keys, N Anthropic tool_use blocks on an AIMessage, N tool_calls) with ``message_to_openai``
and prints the time per part and the ratio of the two sizes' per-part times: about 1 when the work is linear,
about 10 when it is quadratic. No model is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from llamaguard_guardrails.langchain import message_to_openai

SHAPES: dict[str, Callable[[int], BaseMessage]] = {
    "text parts": lambda n: HumanMessage(content=[{"type": "text", "text": f"part {i} words"} for i in range(n)]),
    "tool_result texts": lambda n: HumanMessage(
        content=[
            {
                "type": "tool_result",
                "tool_use_id": "c",
                "content": [{"type": "text", "text": f"t {i}"} for i in range(n)],
            }
        ]
    ),
    "extras keys": lambda n: HumanMessage(
        content=[{"type": "text", "text": "x", "extras": {f"k{i}": f"value {i}" for i in range(n)}}]
    ),
    "tool_use blocks": lambda n: AIMessage(
        content=[{"type": "tool_use", "id": f"c{i}", "name": "search", "input": {"q": f"q {i}"}} for i in range(n)]
    ),
    "tool_calls": lambda n: AIMessage(
        content="", tool_calls=[{"name": "search", "args": {"q": f"q {i}"}, "id": f"c{i}"} for i in range(n)]
    ),
}


def per_part(make: Callable[[int], BaseMessage], n: int) -> float:
    message = make(n)
    start = time.perf_counter()
    message_to_openai(message)
    return (time.perf_counter() - start) / n


def main() -> None:
    small, large = 2_000, 20_000
    print(f"{'shape':<20} {'us/part @' + str(small):>14} {'us/part @' + str(large):>15} {'ratio':>7}")
    for name, make in SHAPES.items():
        a, b = per_part(make, small), per_part(make, large)
        print(f"{name:<20} {a * 1e6:>14.1f} {b * 1e6:>15.1f} {b / a:>7.2f}")


if __name__ == "__main__":
    main()
