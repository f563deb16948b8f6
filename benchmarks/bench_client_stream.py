"""Time to the first released text of a guarded ``openai`` stream: ``stream_mode="buffered"`` vs ``"windowed"``.

An OpenAI-compatible server on 127.0.0.1 streams an answer in small chunks with a delay per chunk (a model
generating); the guard is a real ``LlamaGuard`` on the test model (or ``--model``). Prints, for each mode, the
seconds to the first released text and to the end, and the ratio of the first-text times.

    python benchmarks/bench_client_stream.py            # test model, 1,200 characters, 8 per chunk, 10 ms each
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai

from llamaguard_guardrails import LlamaGuard, Policy
from llamaguard_guardrails.client import guard_client
from llamaguard_guardrails.test_model import make_test_model

ANSWER = "Mix flour, water, salt and yeast; knead ten minutes, let it rise, shape, rise again and bake hot. "


def serve(text: str, piece: int, delay_s: float) -> ThreadingHTTPServer:
    """A chat-completions server streaming ``text`` in ``piece``-character chunks, ``delay_s`` apart."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            head = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            for i in range(0, len(text), piece):
                time.sleep(delay_s)
                chunk = {**head, "choices": [{"index": 0, "delta": {"content": text[i : i + piece]}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timed(client: Any) -> tuple[float, float, int]:
    """(seconds to the first released text, seconds to the end, characters released)."""
    start, first, released = time.perf_counter(), None, 0
    for chunk in client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Bread?"}], stream=True
    ):
        text = "".join(c.delta.content or "" for c in chunk.choices)
        if text and first is None:
            first = time.perf_counter() - start
        released += len(text)
    return first or 0.0, time.perf_counter() - start, released


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a Llama Guard 4 directory or id (default: the test model)")
    parser.add_argument("--chars", type=int, default=1200)
    parser.add_argument("--piece", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=256)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, args.model or str(make_test_model(Path(tmp) / "model")))


def run(args: argparse.Namespace, model: str) -> int:
    guard = LlamaGuard.from_pretrained(model, policy=Policy(threshold=1.0))  # measure the path, not the verdicts
    text = (ANSWER * (args.chars // len(ANSWER) + 1))[: args.chars]
    server = serve(text, args.piece, args.delay_ms / 1000)
    raw = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="k", max_retries=0)
    results = {}
    for mode in ("buffered", "windowed"):
        client = guard_client(raw, guard, stream_mode=mode, window_size=args.window)
        timed(client)  # warm-up
        results[mode] = timed(client)
        first, total, released = results[mode]
        print(f"{mode:9} first text {first:6.2f} s   end {total:6.2f} s   released {released} characters")
    ratio = results["buffered"][0] / max(results["windowed"][0], 1e-9)
    print(f"first text: windowed is {ratio:.1f}x sooner than buffered")
    server.shutdown()
    guard.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
