"""A small OpenAI-compatible text endpoint: a deterministic generator, no weights, timing set by two knobs.

Routes: POST /v1/chat/completions, POST /v1/completions (`stream` true or false), GET /v1/models.
The answer to a prompt is the same words every time (chosen by a hash of the prompt), `max_tokens` of them
(default 16; `max_tokens` reached gives `finish_reason: length`). Timing: the first token comes `ttft_s`
after the request, each next one `itl_s` after the previous (a whole answer comes after all of them). A stream
sends a role chunk at once (no content), one chunk per token, a last chunk with `finish_reason`, a `usage`
chunk when `stream_options.include_usage` is true, then `data: [DONE]`.

Usage: add_routes(app, LlmKnobs(ttft_s=0.05, itl_s=0.01, name="tiny-llm"), faults)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from modelserver.faults import Faults

_SENTENCE = (
    "the model answers with words chosen by a hash of the prompt so every run says the same thing "
    "while the clock decides when each token leaves the server"
)
WORDS = tuple(_SENTENCE.split(" "))
DEFAULT_MAX_TOKENS = 16
MAX_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class LlmKnobs:
    """How the generator behaves: its model name and the time to first token and between tokens."""

    name: str = "tiny-llm"
    ttft_s: float = 0.0
    itl_s: float = 0.0


KNOBS = web.AppKey("llm_knobs", LlmKnobs)
LLM_FAULTS = web.AppKey("llm_faults", Faults)


def generate(prompt: str, n: int) -> list[str]:
    """`n` tokens (words, each but the first with a leading space) answering `prompt`, deterministically."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "little")
    out = []
    for i in range(n):
        seed = (seed * 6364136223846793005 + 1442695040888963407) % 2**64
        word = WORDS[(seed >> 33) % len(WORDS)]
        out.append(word if i == 0 else " " + word)
    return out


def _prompt(doc: dict[str, Any], chat: bool) -> str:
    if not chat:
        prompt = doc.get("prompt", "")
        return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        raise web.HTTPBadRequest(reason="messages must be a non-empty list")
    return orjson.dumps(messages).decode()


def _max_tokens(doc: dict[str, Any]) -> int:
    n = doc.get("max_tokens", doc.get("max_completion_tokens", DEFAULT_MAX_TOKENS))
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_TOKENS:
        raise web.HTTPBadRequest(reason=f"max_tokens must be an integer from 1 to {MAX_TOKENS}")
    return n


def _choice(chat: bool, piece: str | None, finish: str | None, whole: bool) -> dict[str, Any]:
    body: dict[str, Any]
    if whole:
        body = {"message": {"role": "assistant", "content": piece}} if chat else {"text": piece}
    elif chat:
        body = {"delta": {} if piece is None else {"content": piece}}
    else:
        body = {"text": piece or ""}
    return {"index": 0, **body, "finish_reason": finish}


async def _complete(request: web.Request, chat: bool) -> web.StreamResponse:
    knobs, faults = request.app[KNOBS], request.app[LLM_FAULTS]
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(reason="the body is not JSON") from None
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    prompt, n = _prompt(doc, chat), _max_tokens(doc)
    fail = faults.should_fail()
    await faults.delay()
    if fail:
        raise web.HTTPInternalServerError(reason="injected fault")
    tokens = generate(prompt, n)
    usage = {
        "prompt_tokens": len(prompt.split()),
        "completion_tokens": n,
        "total_tokens": len(prompt.split()) + n,
    }
    head = {
        "id": f"cmpl-{hashlib.sha256(prompt.encode()).hexdigest()[:12]}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": knobs.name,
    }
    if doc.get("stream") is True:
        options = doc.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        return await _stream(request, knobs, chat, head, tokens, usage if with_usage else None)
    await asyncio.sleep(knobs.ttft_s + knobs.itl_s * (n - 1))
    whole = {
        **head,
        "object": "chat.completion" if chat else "text_completion",
        "choices": [_choice(chat, "".join(tokens), "length", True)],
        "usage": usage,
    }
    return web.Response(body=orjson.dumps(whole), content_type="application/json")


async def _stream(
    request: web.Request,
    knobs: LlmKnobs,
    chat: bool,
    head: dict[str, Any],
    tokens: list[str],
    usage: dict[str, int] | None,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    started = time.monotonic()

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        await resp.write(b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n")

    if chat:
        await send([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
    for i, token in enumerate(tokens):
        # sleep to the token's due time (not by gaps): the server's own costs do not add up along the answer
        due = started + knobs.ttft_s + knobs.itl_s * i
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await send([_choice(chat, token, None, False)])
    await send([_choice(chat, None, "length", False)])
    if usage is not None:
        await send([], usage=usage)
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    return await _complete(request, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions."""
    return await _complete(request, chat=False)


async def models(request: web.Request) -> web.Response:
    """GET /v1/models."""
    name = request.app[KNOBS].name
    body = {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "outrider"}]}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def add_routes(app: web.Application, knobs: LlmKnobs, faults: Faults) -> None:
    """Serve the OpenAI-compatible routes on `app`."""
    app[KNOBS] = knobs
    app[LLM_FAULTS] = faults
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
