"""The scoring URI of an online endpoint: ``POST <scoringUri>`` (``.../score``, the chat-completion
contract of the reference doc) and ``POST <scoring base>/v1/chat/completions`` (OpenAI-style, streamed
as server-sent events ending in ``data: [DONE]``).

Requests are checked with the product's own contract (``azml_magics.scoring``), so a malformed body
gets the 400 whose message echoes the expected format. Routing is the service's: key auth, the
``azureml-model-deployment`` header picks a deployment, otherwise traffic must have a positive weight.
Replies are deterministic, derived from the prompt (see :func:`reply_for`); with the fault
``real_replies`` on, a deployment of a model trained on uploaded data answers with the local backend's
tiny model instead (``tiny_replies``), generated outside the state lock.
"""

from __future__ import annotations

import json

from starlette.responses import JSONResponse, StreamingResponse

from .routing import Deferred, Req, error_response, ok, route

SCORE_ROOT = "/_score/{endpoint}"


class _Refused(Exception):
    def __init__(self, response):
        super().__init__("refused")
        self.response = response


def _deployment(state, req: Req) -> str:
    """The deployment this request goes to, after the service's key and routing checks."""
    name = req.params["endpoint"]
    keys = state.endpoint_keys.get(name)
    if keys is None:
        raise _Refused(error_response(404, "EndpointNotFound", f"Endpoint {name} not found."))
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    given = token if scheme.lower() == "bearer" else req.headers.get("api-key", "")
    if given not in keys:
        raise _Refused(error_response(401, "Unauthorized", "Key or token is invalid."))
    deployments = state.deployments.get(name, {})
    wanted = req.headers.get("azureml-model-deployment")
    if wanted:
        if wanted not in deployments:
            raise _Refused(error_response(404, "DeploymentNotFound",
                                          f"Deployment {wanted} not found under endpoint {name}."))
        return wanted
    traffic = {k: int(v) for k, v in (state.endpoints[name].get("traffic") or {}).items() if int(v) > 0}
    if not traffic:
        raise _Refused(error_response(424, "NoTraffic", "No valid deployments to route to. Please check that the "
                                      "endpoint has at least one deployment with positive weight values or use a "
                                      "deployment specific header to route."))
    return max(traffic, key=traffic.get)


def reply_for(conversation: list[dict], deployment: str, max_new_tokens: int):
    """A deterministic reply to the last user turn, cut at MAX_NEW_TOKENS words (finish_reason
    ``length`` then); token counts are word counts."""
    from azml_magics.scoring import Reply

    last = [m for m in conversation if m["role"] == "user"][-1:] or conversation[-1:]
    words = f"(emulated reply from {deployment}) You said: {last[0]['content'][:80]}".split()
    prompt_tokens = sum(len(m["content"].split()) for m in conversation)
    cut = words[:max_new_tokens]
    return Reply(" ".join(cut), "length" if len(cut) < len(words) else "stop", prompt_tokens, len(cut))


def _bad_request(err) -> JSONResponse:
    from azml_magics import scoring

    return JSONResponse(scoring.error_body(str(err)), status_code=400)


def _accept(state, req: Req, parse):
    """(deployment, checked request), or raise _Refused with the service's refusal."""
    from azml_magics import scoring

    deployment = _deployment(state, req)
    try:
        return deployment, parse(req.json)
    except scoring.BadRequest as err:
        raise _Refused(_bad_request(err)) from None


@route("POST", SCORE_ROOT + "/score", "score")
def score(state, req: Req):
    from azml_magics import scoring

    try:
        deployment, parsed = _accept(state, req, scoring.parse_score_request)
    except _Refused as refused:
        return refused.response

    def answer(replies):
        return ok(scoring.score_response(replies, model=deployment, batched_input=parsed.batched_input))

    return _replies(state, req, deployment, parsed, answer)


@route("POST", SCORE_ROOT + "/v1/chat/completions", "chat_completions")
def chat_completions(state, req: Req):
    from azml_magics import scoring

    try:
        deployment, parsed = _accept(state, req, scoring.parse_chat_request)
    except _Refused as refused:
        return refused.response

    def answer(replies):
        if not parsed.stream:
            return ok(scoring.chat_response(replies[0], model=deployment))
        return StreamingResponse(_sse(state, replies[0], deployment, parsed.include_usage),
                                 media_type="text/event-stream")

    return _replies(state, req, deployment, parsed, answer)


def _replies(state, req: Req, deployment: str, parsed, answer):
    """ANSWER(replies): deterministic ones now, or (fault ``real_replies``) a Deferred that generates
    with the tiny model when the deployment's model was trained on data really uploaded."""
    deterministic = [reply_for(c, deployment, parsed.params.max_new_tokens) for c in parsed.conversations]
    if not state.faults.real_replies:
        return answer(deterministic)

    def generate():
        from azml_magics import scoring

        from . import tiny_replies

        path = tiny_replies.training_blob(state, req.params["endpoint"], deployment)
        if path is None or not tiny_replies.blob_exists(state.emulator, path):
            return answer(deterministic)
        try:
            return answer([tiny_replies.generate(c, parsed.params) for c in parsed.conversations])
        except scoring.BadRequest as err:
            return _bad_request(err)

    return Deferred(generate)


async def _sse(state, reply, model: str, include_usage: bool):
    """The reply word by word, ``faults.stream_delay`` apart (a deployment generates as it streams; the
    default 0 sends it at once). ``state.streams`` records how each stream ended: a client that closes
    the connection mid-reply cancels this generator (Starlette watches for the disconnect), so its
    record says ``finished: False`` with the words sent so far."""
    import asyncio

    from azml_magics import scoring

    chunk_id = scoring.new_id("chatcmpl")
    words = reply.text.split(" ")
    record = {"deployment": model, "sent": 0, "words": len(words), "finished": False}
    with state.lock:
        state.streams.append(record)
    delay = state.faults.stream_delay
    try:
        yield _data(scoring.chat_chunk(chunk_id, model, role="assistant", content=""))
        for i, word in enumerate(words):
            if delay:
                await asyncio.sleep(delay)
            yield _data(scoring.chat_chunk(chunk_id, model, content=word if i == 0 else " " + word))
            record["sent"] = i + 1
        yield _data(scoring.chat_chunk(chunk_id, model, finish_reason=reply.finish_reason))
        if include_usage:
            yield _data(scoring.chat_chunk(chunk_id, model, usage=scoring.usage_of(reply)))
        yield "data: [DONE]\n\n"
        record["finished"] = True
    finally:
        record["ended"] = True


def _data(chunk: dict) -> str:
    return f"data: {json.dumps(chunk)}\n\n"
