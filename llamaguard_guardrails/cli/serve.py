"""``serve``: Llama Guard 4 as an OpenAI-compatible moderation service (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .common import EXIT_OK, add_policy_arguments, check_device, policy_from_args

log = logging.getLogger("llamaguard_guardrails.cli")

DESCRIPTION = """\
Serve Llama Guard 4 over HTTP: POST /v1/moderations (the OpenAI Moderations API: the openai SDK, OGX's
moderation_endpoint, gateways), POST /v1/guard/classify and /v1/guard/classify_batch (OpenAI-format
conversations, a per-request policy), GET /health, /ready, /v1/models, /metrics (Prometheus).

API keys: --api-key (repeatable) and/or the environment variable LLAMAGUARD_API_KEYS (several keys separated
by commas or spaces); clients send `Authorization: Bearer <key>`. Without keys there is no authentication:
keep --host on 127.0.0.1 then.

examples:
  llamaguard-guardrails make-test-model /tmp/lg4 && llamaguard-guardrails serve --model /tmp/lg4
  LLAMAGUARD_API_KEYS=k1,k2 llamaguard-guardrails serve --model meta-llama/Llama-Guard-4-12B --host 0.0.0.0
"""


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..guard import LlamaGuard
    from ..serve.app import create_app
    from ..serve.settings import ServeSettings, api_keys_from_env

    check_device(args.device)
    policy = policy_from_args(args)
    settings = ServeSettings(
        api_keys=tuple(args.api_key or ()) + api_keys_from_env(),
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_inputs=args.max_inputs,
        max_pending=args.max_pending,
        timeout_s=args.timeout,
        served_model_names=tuple(args.served_model_name or ("llama-guard-4",)),
    )
    if not settings.api_keys and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without API keys: anyone who reaches it can use it", args.host)
    failures: list[BaseException] = []
    server: Any = None

    def load() -> LlamaGuard:
        try:
            return LlamaGuard.from_pretrained(args.model, policy=policy, **guard_options(args))
        except BaseException as exc:
            failures.append(exc)
            server.should_exit = True  # a server without its model must not keep answering 503 forever
            raise

    config = uvicorn.Config(
        create_app(load, settings),
        host=args.host,
        port=args.port,
        log_level="info" if getattr(args, "verbose", False) else "warning",
        timeout_graceful_shutdown=args.graceful_timeout,
        limit_concurrency=settings.max_pending * 2,
    )
    server = uvicorn.Server(config)
    print(f"serving Llama Guard 4 from {args.model} on http://{args.host}:{args.port} (ready: GET /ready)", flush=True)
    server.run()
    if failures:
        raise failures[0]
    return EXIT_OK


#: ``--prefix-caching``: (prefix_caching, cache_conversations) of the guard.
PREFIX_CACHING = {"auto": (None, True), "on": (True, True), "policy": (True, False), "off": (False, True)}


def guard_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``LlamaGuard.from_pretrained`` the options give (besides the model and policy)."""
    prefix_caching, cache_conversations = PREFIX_CACHING[args.prefix_caching]
    return {
        "device": args.device,
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "warmup": args.compile is not None,
        "compile": args.compile,
        "prefix_caching": prefix_caching,
        "cache_conversations": cache_conversations,
    }


def add_parsers(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    p = subparsers.add_parser(
        "serve",
        help="serve Llama Guard 4 as an OpenAI-compatible /v1/moderations endpoint",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="M", help="model folder or Hugging Face id")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", action="append", metavar="KEY", help="a bearer key clients must send (repeatable)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--compile", choices=("cuda_graphs",), help="CUDA graphs for text checks (GPU), warmed at load")
    p.add_argument(
        "--prefix-caching",
        choices=tuple(PREFIX_CACHING),
        default="auto",
        help="keep checked texts' KV so a text that extends one (OGX's growing answer) runs only its new tokens "
        "(auto: on for CPU, off for GPU); policy: reuse only the policy part, the same for every client, so a "
        "check's time reveals nothing of what other clients sent (for a server shared by tenants)",
    )
    p.add_argument("--served-model-name", action="append", metavar="NAME", help="names `model` may take (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="deadline of each check; past it 504")
    p.add_argument("--max-inputs", type=int, default=64, metavar="N", help="inputs per request (default 64)")
    p.add_argument("--max-pending", type=int, default=512, metavar="N", help="checks queued at once; beyond: 429")
    p.add_argument("--max-body-mb", type=float, default=16.0, metavar="MB", help="request body limit (default 16)")
    p.add_argument("--max-batch", type=int, default=16, metavar="N", help="prompts per forward pass (default 16)")
    p.add_argument("--max-wait-ms", type=float, default=0.0, metavar="MS", help="wait for a fuller batch (default 0)")
    p.add_argument(
        "--graceful-timeout", type=float, default=30.0, metavar="S", help="time requests in flight get at shutdown"
    )
    add_policy_arguments(p)
    p.set_defaults(func=cmd_serve)
