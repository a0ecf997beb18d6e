"""LLM client throughput against the server's own ceiling.

A loopback OpenAI-compatible server answers every request after a fixed latency and serves at
most ``SERVER_SLOTS`` requests at a time, so its ceiling is ``SERVER_SLOTS / LATENCY``
requests per second. The client (``refrad_builder.text.llm_client.LLMClient``, concurrency = slots) should
reach close to that ceiling: ratio = achieved / ceiling (target >= 0.8), i.e. the client is
never the bottleneck. The server also reports the most requests it had in flight at once,
against its slots (the client should keep every slot busy: 1.0).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import time
import urllib.request
from pathlib import Path

from refrad_builder.engine.config import LLMConfig
from refrad_builder.text.llm_client import LLMClient, Request
from refrad_builder.text.prompts import load_prompt

LATENCY = 0.25  # an LLM answer takes seconds; a quarter of one is already harsh
SERVER_SLOTS = 16
REQUESTS = 320


async def _handle(reader, writer, slots: asyncio.Semaphore, body: bytes, stats: dict) -> None:
    # A keep-alive HTTP/1.1 loop: enough of the protocol for the OpenAI client.
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /stats"):
                data = json.dumps(stats).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
                continue
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            stats["waiting"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["waiting"])
            async with slots:
                await asyncio.sleep(LATENCY)
            stats["waiting"] -= 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _serve(port_out) -> None:
    """The server, in its own process: at most SERVER_SLOTS answers in progress at a time."""
    content = json.dumps({"translation": "A translated sentence."})
    body = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()

    async def main() -> None:
        slots = asyncio.Semaphore(SERVER_SLOTS)
        stats = {"waiting": 0, "max_in_flight": 0}
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, slots, body, stats), "127.0.0.1", 0
        )
        port_out.put(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
        await server.serve_forever()

    asyncio.run(main())


def bench_client() -> tuple[float, float, int]:
    """(achieved requests/s, server ceiling requests/s, most requests in flight at once)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(queue,), daemon=True)
    proc.start()
    url = queue.get(timeout=60)
    prompt = load_prompt("translate", "en")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LLMConfig(url=url, concurrency=SERVER_SLOTS, max_retries=0)
        client = LLMClient(cfg, Path(tmp))
        reqs = [Request(prompt, {"text": f"Satz {i}"}) for i in range(REQUESTS)]
        t0 = time.perf_counter()
        results = client.complete_many(reqs)
        seconds = time.perf_counter() - t0
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as resp:
        in_flight = json.loads(resp.read())["max_in_flight"]
    proc.terminate()
    failed = sum(isinstance(r, Exception) for r in results)
    if failed:
        raise RuntimeError(f"{failed} requests failed in the benchmark")
    return REQUESTS / seconds, SERVER_SLOTS / LATENCY, in_flight


if __name__ == "__main__":
    achieved, ceiling, in_flight = bench_client()
    print(
        f"LLM client: {achieved:.0f} req/s of a {ceiling:.0f} req/s ceiling "
        f"({achieved / ceiling:.2f}); in flight {in_flight} of {SERVER_SLOTS} slots"
    )
