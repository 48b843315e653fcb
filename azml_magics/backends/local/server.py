"""The local endpoint: one process serving one model on 127.0.0.1, like an Azure managed endpoint.

Run by :mod:`azml_magics.backends.local.endpoints` as
``python -m azml_magics.backends.local.server --model-dir D --key-file F --port P --name N``.
Routes: ``POST /score`` (Azure's contract), ``POST /v1/chat/completions`` (OpenAI's, streamed as
server-sent events), ``GET /health`` (no key) and ``/openapi.json``. Generation runs on one engine
(``--engine``, see :mod:`.engines`): transformers' continuous batching by default. Every request with a body needs
``Authorization: Bearer <key>`` (compared in constant time). Bad requests get a 400 that shows the
expected format, oversize bodies a 413; anything unexpected is logged and answered with a clean 503,
never a bare 500.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import sys
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from sse_starlette.sse import EventSourceResponse

from ...scoring import (
    CHAT_REQUEST_SCHEMA,
    EXPECTED_CHAT_FORMAT,
    EXPECTED_SCORE_FORMAT,
    MAX_NEW_TOKENS_CAP,
    SCORE_REQUEST_SCHEMA,
    BadRequest,
    ParsedRequest,
    Reply,
    chat_chunk,
    chat_response,
    error_body,
    new_id,
    parse_chat_request,
    parse_score_request,
    score_response,
    usage_of,
)
from .engine_base import BaseEngine as Engine, Generated, Job, LoopWaker, TextDelta, TokenPipe
from .engines import ENGINE_CHOICES, EngineUnavailable, build_engine

log = logging.getLogger("azml_magics.endpoint")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 1_000_000
MAX_PENDING = 256


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI wrapper: refuses a body over ``limit`` bytes, by its Content-Length or as it streams in."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            response = _too_large(self.limit)
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, counted, send)


class CatchAll:
    """ASGI wrapper: anything unexpected is logged and answered with a clean 503, and not raised on.

    Why not ``exception_handler(Exception)``: Starlette re-raises after such a handler, so uvicorn
    logs the error a second time and resets the connection before the client reads the answer.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the one place that answers for every other error
            log.error("request to %s failed", scope.get("path"), exc_info=exc)
            if not started:
                response = JSONResponse(error_body(
                    f"the endpoint could not answer ({type(exc).__name__}); its log has the details",
                    type="server_error"), status_code=503)
                await response(scope, receive, send)


class _ClientGone(Exception):
    """The client closed the connection: stop its work, answer nobody."""


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body is read already, so the next message says so)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        error_body(f"the request body is over this endpoint's limit of {limit} bytes; send less", code="too_large"),
        status_code=413,
    )


def _reply(engine: Engine, generated: Generated) -> Reply:
    return Reply(
        text=engine.decode(generated.token_ids),
        finish_reason=generated.finish_reason,
        prompt_tokens=generated.prompt_tokens,
        completion_tokens=generated.completion_tokens,
    )


def create_app(
    engine: Engine,
    key: str,
    *,
    name: str = "local",
    model_name: str = "local",
    deployment: str = "demo",
    max_body_bytes: int = MAX_BODY_BYTES,
    max_new_tokens_cap: int = MAX_NEW_TOKENS_CAP,
    request_timeout: float = 90.0,
    body_timeout: float = 30.0,
):
    """The ASGI app (FastAPI inside a body-size limit), serving ``engine`` behind ``key``."""
    app = FastAPI(
        title=f"azml_magics local endpoint '{name}'",
        version="1",
        description=f"Serves {model_name}. Send `Authorization: Bearer <key>`; read the key in Python "
        "with `azml_magics.backends.local.endpoints.read_key(home, name)` (never print it).",
    )
    secret = key.encode()
    headers = {"azureml-model-deployment": deployment}
    shared: list[LoopWaker] = []  # one waker for every stream on the server's loop

    def waker() -> LoopWaker:
        """The running loop's waker (made again if the app moves to another loop, as a test client may)."""
        loop = asyncio.get_running_loop()
        if not shared or shared[0].loop is not loop:
            shared[:] = [LoopWaker(loop)]
        return shared[0]

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), secret)

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            error_body("missing or wrong key: send 'Authorization: Bearer <endpoint key>'", type="authentication_error"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def read_json(request: Request, expected: str):
        try:  # a client that sends its body slowly, or never finishes it, is not waited on for ever
            raw = await asyncio.wait_for(request.body(), timeout=body_timeout)
        except asyncio.TimeoutError:
            raise _SlowBody() from None
        except ClientDisconnect:
            raise _ClientGone() from None
        try:  # off the event loop, as parsing and tokenizing are: /health must answer meanwhile
            return await asyncio.to_thread(json.loads, raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"the request body is not valid JSON ({exc})", expected) from None
        except RecursionError:
            raise BadRequest("the request body is nested too deeply to read", expected) from None
        except ValueError as exc:  # an integer of more than 4,300 digits
            raise BadRequest(f"the request body holds a number too long to read ({str(exc).split(';')[0]})",
                             expected) from None

    reserved = 0  # conversations being tokenized, not yet in the engine's queue

    async def jobs_for(parsed: ParsedRequest, on_token=None) -> list[Job]:
        """Every conversation counts against the pending limit; tokenizing runs off the event loop."""
        nonlocal reserved
        n = _check_count(len(parsed.conversations))
        if engine.held() + reserved + n > MAX_PENDING:
            raise _Busy()
        reserved += n
        try:
            prompts = await asyncio.to_thread(lambda: [engine.encode(c, parsed.params) for c in parsed.conversations])
        finally:
            reserved -= n  # the caller submits them before its next await: the count stays whole
        return [Job(p, parsed.params, on_token) for p in prompts]

    async def generate(jobs: list[Job], request: Request) -> list[Generated]:
        waiting = asyncio.gather(*[asyncio.wrap_future(engine.submit(job)) for job in jobs])
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({waiting, gone}, timeout=request_timeout, return_when=asyncio.FIRST_COMPLETED)
            if waiting in done:
                return list(waiting.result())
            raise _ClientGone() if gone in done else asyncio.TimeoutError()
        finally:
            gone.cancel()
            if not waiting.done():
                for job in jobs:  # a client that left (or timed out) stops its generation
                    job.cancel()
                waiting.cancel()

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse(error_body(exc.message), status_code=400, headers=headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        return _too_large(max_body_bytes)

    @app.exception_handler(_Busy)
    async def busy(request: Request, exc: _Busy):
        return JSONResponse(
            error_body(f"the endpoint has {MAX_PENDING} requests waiting; retry shortly", type="busy"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(_ClientGone)
    async def client_gone(request: Request, exc: _ClientGone):
        log.info("client left %s before its answer; its generation stopped", request.url.path)
        return Response(status_code=499)  # nobody reads it; nginx's code for "client closed request"

    @app.exception_handler(_SlowBody)
    async def slow_body(request: Request, exc: _SlowBody):
        log.info("request body to %s not received within %g s", request.url.path, body_timeout)
        return JSONResponse(error_body(f"the request body did not arrive within {body_timeout:g} s; send it "
                                       "whole, with a correct Content-Length", type="timeout"), status_code=408)

    @app.exception_handler(asyncio.TimeoutError)
    async def timed_out(request: Request, exc: Exception):
        return JSONResponse(
            error_body(f"no reply within the endpoint's request timeout of {request_timeout:g} s", type="timeout"),
            status_code=408,
        )

    @app.get("/health")
    async def health():
        """Liveness and readiness; no key needed. The pid lets a client tell this server from another."""
        return {
            "status": "ok",
            "name": name,
            "model": model_name,
            "deployment": deployment,
            "pid": os.getpid(),
            **engine.health(),  # engine, pending, running, batches, sequences, cancelled, ...
            "max_new_tokens": max_new_tokens_cap,  # the cap a request may ask (clients read their limits here)
        }

    def body_doc(schema: dict) -> dict:
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}

    @app.post("/score", openapi_extra=body_doc(SCORE_REQUEST_SCHEMA))
    async def score(request: Request):
        """Azure's scoring contract: ``{"input_data": {"input_string": [...], "parameters": {...}}}``."""
        if not authorized(request):
            return unauthorized()
        body = await read_json(request, EXPECTED_SCORE_FORMAT)
        inputs = (body.get("input_data") or {}) if isinstance(body, dict) else {}
        strings = inputs.get("input_string") if isinstance(inputs, dict) else None
        if isinstance(strings, list) and strings and isinstance(strings[0], list):  # a list of conversations
            _check_count(len(strings))  # before checking each one: refused at once
        parsed = await asyncio.to_thread(parse_score_request, body, max_new_tokens_cap=max_new_tokens_cap)
        generated = await generate(await jobs_for(parsed), request)
        body = score_response([_reply(engine, g) for g in generated], model=model_name, batched_input=parsed.batched_input)
        return JSONResponse(body, headers={**headers, "x-azml-batch-size": str(max(g.batch_size for g in generated))})

    @app.post("/v1/chat/completions", openapi_extra=body_doc(CHAT_REQUEST_SCHEMA))
    async def chat_completions(request: Request):
        """OpenAI's chat completions; ``"stream": true`` answers with server-sent events."""
        if not authorized(request):
            return unauthorized()
        body = await read_json(request, EXPECTED_CHAT_FORMAT)
        parsed = await asyncio.to_thread(parse_chat_request, body, max_new_tokens_cap=max_new_tokens_cap)
        if parsed.stream:
            tokens = TokenPipe(waker())
            (job,) = await jobs_for(parsed, tokens)
            return _stream(engine, parsed, job, tokens, model_name, request_timeout)
        (generated,) = await generate(await jobs_for(parsed), request)
        body = chat_response(_reply(engine, generated), model=model_name)
        return JSONResponse(body, headers={**headers, "x-azml-batch-size": str(generated.batch_size)})

    app.add_middleware(CatchAll)  # inside Starlette's error middleware: it never sees the exception
    return BodyLimit(app, max_body_bytes)


class _Busy(Exception):
    pass


def _check_count(n: int) -> int:
    """At most MAX_PENDING conversations in one request: more could never fit in the queue."""
    if n > MAX_PENDING:
        raise BadRequest(f"the request holds {n} conversations; this endpoint takes at most {MAX_PENDING} "
                         "at once, so send them in several requests", EXPECTED_SCORE_FORMAT)
    return n


class _SlowBody(Exception):
    pass


def _stream(engine: Engine, parsed: ParsedRequest, job: Job, tokens: TokenPipe, model_name: str,
            timeout: float) -> EventSourceResponse:
    """Stream one reply as ``chat.completion.chunk`` events; a client that leaves cancels its row."""
    loop = asyncio.get_running_loop()
    done = asyncio.wrap_future(engine.submit(job))
    done.add_done_callback(lambda f: f.cancelled() or f.exception())  # a client that left: not an error
    chunk_id, created = new_id("chatcmpl"), int(time.time())

    def event(**fields) -> str:
        return json.dumps(chat_chunk(chunk_id, model_name, created=created, **fields))

    async def events():
        text = TextDelta(engine)
        deadline = loop.time() + timeout
        try:
            yield event(role="assistant", content="")
            ended = False
            while not ended:
                arrived = tokens.take_nowait() or await asyncio.wait_for(tokens.take(), max(0.0, deadline - loop.time()))
                ended = arrived[-1] is None
                piece = text.push(*(t for t in arrived if t is not None))
                if piece:
                    yield event(content=piece)
            generated = await done
            tail = text.flush()
            if tail:
                yield event(content=tail)
            reply = _reply(engine, generated)
            usage = usage_of(reply)
            yield event(content=None, finish_reason=reply.finish_reason, usage=None if parsed.include_usage else usage)
            if parsed.include_usage:
                yield event(usage=usage)
            yield "[DONE]"
        except Exception as exc:  # the status line is sent: report in-band, as OpenAI's API does
            log.error("stream failed", exc_info=exc)
            kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "server_error"
            yield json.dumps(error_body(f"the stream stopped: {type(exc).__name__}", type=kind))
        finally:
            job.cancel()

    return EventSourceResponse(events(), sep="\n", ping=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m azml_magics.backends.local.server", description=__doc__)
    parser.add_argument("--model-dir", required=True, help="a Hugging Face model folder")
    parser.add_argument("--key-file", required=True, help="file holding the endpoint key (mode 0600)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK)
    parser.add_argument("--name", default="local", help="endpoint name (shown in /health)")
    parser.add_argument("--model-name", default="local", help="model reference reported in responses")
    parser.add_argument("--deployment", default="demo")
    parser.add_argument("--engine", default="auto", choices=ENGINE_CHOICES,
                        help="transformers: continuous batching (default); batcher: padded generate batches; "
                             "vllm: needs the vllm extra and a GPU; auto: vllm where it can run, else transformers")
    parser.add_argument("--base-model-dir", default=None,
                        help="vllm: the base model folder of a LoRA adapter folder (served unmerged)")
    parser.add_argument("--gpu-memory-share", type=float, default=None,
                        help="vllm: share of the GPU's memory for weights and cache (default 0.85)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="conversations generated together (default: 32 transformers, 8 batcher, 64 vllm)")
    parser.add_argument("--batch-window-ms", type=float, default=10.0, help="batcher: longest wait for a batch to fill")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS_CAP, help="cap on tokens per reply")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--request-timeout", type=float, default=90.0, help="seconds")
    parser.add_argument("--body-timeout", type=float, default=30.0, help="seconds to receive a request body")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores; 1 for a tiny model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    key = Path(args.key_file).read_text().strip()
    if not key:
        print(f"error: the key file {args.key_file} is empty", file=sys.stderr)
        return 2
    log.info("loading %s from %s", args.model_name, args.model_dir)
    try:
        engine = build_engine(args.engine, args.model_dir, max_batch=args.max_batch, window_ms=args.batch_window_ms,
                              threads=args.threads, base_dir=args.base_model_dir,
                              gpu_memory_share=args.gpu_memory_share)
    except EngineUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"error: cannot load the model from {args.model_dir}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    app = create_app(
        engine, key, name=args.name, model_name=args.model_name, deployment=args.deployment,
        max_body_bytes=args.max_body_bytes, max_new_tokens_cap=args.max_new_tokens,
        request_timeout=args.request_timeout, body_timeout=args.body_timeout,
    )
    del key
    import uvicorn

    log.info("serving endpoint '%s' on http://%s:%d with the %s engine", args.name, args.host, args.port, engine.name)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
