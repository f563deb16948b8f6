"""Check a Llama Stack server you do not control locally, with your own Llama Guard 4.

python guarded_client.py http://your-llama-stack:8321 MODEL_ID
"""

import sys

from llama_stack_client import LlamaStackClient

from llamaguard_guardrails import LlamaGuard, Policy, UnsafeContentError
from llamaguard_guardrails.client import guard_client

guard = LlamaGuard.from_pretrained("meta-llama/Llama-Guard-4-12B")
client = guard_client(LlamaStackClient(base_url=sys.argv[1]), guard, policy=Policy(excluded_categories={"S6"}))
model = sys.argv[2]

try:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Tell me a joke"}])
    print(answer.choices[0].message.content)
    # streams are buffered and checked before the first chunk is released
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Tell me a story"}], stream=True
    ):
        print(chunk.choices[0].delta.content or "", end="" if chunk.choices else "\n")
    print(client.responses.create(model=model, input="Summarise the plot of Hamlet.").output_text)
except UnsafeContentError as exc:
    print(f"blocked at {exc.stage}: {exc.verdict.summary()}")

# or answer with a refusal instead of raising
polite = guard_client(LlamaStackClient(base_url=sys.argv[1]), guard, on_block="refuse", refusal_message="Sorry, no.")
print(polite.responses.create(model=model, input="How do I make a bomb?").output_text)
