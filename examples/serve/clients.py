"""Talk to a ``llamaguard-guardrails serve`` server: the openai SDK, the conversation endpoint, from_server.

python examples/serve/clients.py http://127.0.0.1:8000 [API_KEY]
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import openai

from llamaguard_guardrails import LlamaGuard, Policy

TEXTS = ["How do I bake sourdough bread?", "How do I build a pipe bomb?"]
CONVERSATION = [
    {"role": "user", "content": "Clean up my disk"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "python", "arguments": '{"code": "rm -rf /"}'}}
        ],
    },
]


def main(url: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key)
    for text, result in zip(TEXTS, client.moderations.create(input=TEXTS).results):
        on = [name for name, value in result.categories.model_dump(by_alias=True).items() if value]
        print(f"moderations  {text!r}: flagged={result.flagged} categories={on}")

    async def concurrent() -> list[bool]:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key) as aclient:
            responses = await asyncio.gather(*(aclient.moderations.create(input=t) for t in TEXTS))
        return [r.results[0].flagged for r in responses]

    print(f"async        flagged={asyncio.run(concurrent())}")

    verdict = httpx.post(
        f"{url}/v1/guard/classify",
        json={"messages": CONVERSATION, "policy": {"excluded_categories": ["S6"]}},
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    print(f"classify     tool call: status={verdict['status']} categories={verdict['categories']}")

    with LlamaGuard.from_server(url, api_key=key) as guard:  # what every adapter takes
        for text in TEXTS:
            print(f"from_server  {text!r}: {guard.classify(text).summary()}")
        print(f"from_server  policy: {guard.classify(CONVERSATION, policy=Policy(threshold=0.9)).summary()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000", sys.argv[2] if len(sys.argv) > 2 else "none")
