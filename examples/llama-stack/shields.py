"""Use the Llama Guard 4 shield of a running `llama stack run run.yaml` server.

LLAMAGUARD_MODEL=/path/to/Llama-Guard-4-12B llama stack run run.yaml --port 8321
python shields.py http://127.0.0.1:8321
"""

import sys

from llama_stack_client import LlamaStackClient

client = LlamaStackClient(base_url=sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8321")

# A shield with its own policy (params are fixed at registration; use a unique provider_shield_id:
# moderations.create(model=...) looks shields up by it).
client.shields.register(
    shield_id="lg4-strict",
    provider_shield_id="lg4-strict",
    params={"excluded_categories": ["S6"], "threshold": 0.3},
)
print([s.identifier for s in client.shields.list()])

history = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "18 C, sunny"},
    {"role": "assistant", "content": "It is 18 C and sunny in Paris."},
]
result = client.safety.run_shield(shield_id="lg4-strict", messages=history)
if result.violation is None:
    print("safe")
else:  # level "error": blocked (also when the guard failed under fail_mode=closed)
    meta = result.violation.metadata
    print(result.violation.user_message, meta["violation_type"], meta["categories"], meta["unsafe_probability"])

moderation = client.moderations.create(input=["How do I bake bread?", "How do I make a bomb?"], model="llama-guard-4")
for r in moderation.results:
    print(r.flagged, [name for name, hit in r.categories.items() if hit], r.metadata["unsafe_probability"])
