"""The endpoint request/response contract, shared by clients, the local server and emulators.

Two routes speak it: Azure's ``POST /score`` (``{"input_data": {"input_string": [...], "parameters":
{...}}, "params": {}}`` -> ``{"output": ...}``) and the OpenAI chat-completions route. Parsing lives
here, once, so the local endpoint refuses exactly what the client would, and every refusal is one line
that shows the expected format. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field

from .errors import AzmlError, SpecError

ROLES = ("system", "user", "assistant")
DEFAULT_MAX_NEW_TOKENS = 200
MAX_NEW_TOKENS_CAP = 1024
SCORE_PARAMETERS = ("temperature", "top_p", "do_sample", "max_new_tokens", "return_full_text")

EXAMPLE_SCORE_REQUEST = {
    "input_data": {
        "input_string": [{"role": "user", "content": "What is LoRA?"}],
        "parameters": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "max_new_tokens": 200},
    },
    "params": {},
}
EXAMPLE_CHAT_REQUEST = {
    "model": "local",
    "messages": [{"role": "user", "content": "What is LoRA?"}],
    "max_tokens": 200,
    "temperature": 0.6,
    "stream": False,
}
_MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {"role": {"enum": list(ROLES)}, "content": {"type": ["string", "array"]}},
}
_MESSAGES_SCHEMA = {"type": "array", "minItems": 1, "items": _MESSAGE_SCHEMA}
SCORE_REQUEST_SCHEMA = {
    "title": "ScoreRequest",
    "type": "object",
    "required": ["input_data"],
    "additionalProperties": False,
    "properties": {
        "input_data": {
            "type": "object",
            "required": ["input_string"],
            "additionalProperties": False,
            "properties": {
                "input_string": {
                    "description": "one conversation, or a list of conversations",
                    "oneOf": [_MESSAGES_SCHEMA, {"type": "array", "minItems": 1, "items": _MESSAGES_SCHEMA}],
                },
                "parameters": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "temperature": {"type": "number", "minimum": 0},
                        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                        "do_sample": {"type": "boolean"},
                        "max_new_tokens": {"type": "integer", "minimum": 1},
                        "return_full_text": {"type": "boolean"},
                    },
                },
            },
        },
        "params": {"type": "object"},
    },
    "example": EXAMPLE_SCORE_REQUEST,
}
CHAT_REQUEST_SCHEMA = {
    "title": "ChatCompletionRequest",
    "type": "object",
    "required": ["messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": _MESSAGES_SCHEMA,
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    },
    "example": EXAMPLE_CHAT_REQUEST,
}
EXPECTED_SCORE_FORMAT = json.dumps(EXAMPLE_SCORE_REQUEST, separators=(", ", ": "))
EXPECTED_CHAT_FORMAT = json.dumps(EXAMPLE_CHAT_REQUEST, separators=(", ", ": "))


class BadRequest(AzmlError):
    """A request the endpoint refuses (HTTP 400); the message ends with the expected format."""

    def __init__(self, problem: str, expected: str = EXPECTED_SCORE_FORMAT):
        self.problem = problem
        self.expected = expected
        super().__init__(f"{problem}; expected a body like {expected}")


@dataclass
class GenerationParams:
    """How to generate one reply; ``temperature == 0`` or ``do_sample=False`` means greedy."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.6
    top_p: float = 0.9
    do_sample: bool = True

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


@dataclass
class ParsedRequest:
    """A checked request: one or more conversations and the generation parameters."""

    conversations: list[list[dict]]
    params: GenerationParams
    batched_input: bool = False  # input_string held a list of conversations (the notebook's file does)
    stream: bool = False
    include_usage: bool = False
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- messages
def _content_text(content, where: str, expected: str) -> str:
    if isinstance(content, str):
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{where}.content is not valid Unicode (it holds a lone surrogate)", expected) from None
        return content
    if isinstance(content, list):  # OpenAI content parts: only text is understood here
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise BadRequest(f"{where}.content parts must be {{'type': 'text', 'text': '...'}}", expected)
            texts.append(part["text"])
        return _content_text("".join(texts), where, expected)
    raise BadRequest(f"{where}.content must be a string, not {_kind(content)}", expected)


def check_messages(messages, where: str = "messages", expected: str = EXPECTED_SCORE_FORMAT) -> list[dict]:
    """Return ``[{"role", "content"}]`` with string content, or raise :class:`BadRequest`."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest(f"{where} must be a non-empty list of {{'role', 'content'}} messages", expected)
    checked = []
    for i, message in enumerate(messages):
        at = f"{where}[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{at} must be an object with 'role' and 'content', not {_kind(message)}", expected)
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(f"{at}.role must be one of {', '.join(ROLES)}, not {json.dumps(role)[:40]}", expected)
        if "content" not in message:
            raise BadRequest(f"{at} has no 'content'", expected)
        checked.append({"role": role, "content": _content_text(message["content"], at, expected)})
    return checked


def _kind(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN and Infinity, read by Python
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _number(value, name: str, low: float, high: float, expected: str, *, integer: bool = False):
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'}, not {_kind(value)}", expected)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, not {value}", expected)
    return value


def _max_tokens(value, name: str, cap: int, expected: str) -> int:
    value = _number(value, name, 1, 10**9, expected, integer=True)
    if value > cap:
        raise BadRequest(f"{name} {value} is over this endpoint's limit of {cap}; ask for at most {cap}", expected)
    return value


# ----------------------------------------------------------------------------- /score
def parse_score_request(body, *, max_new_tokens_cap: int = MAX_NEW_TOKENS_CAP) -> ParsedRequest:
    """Check an Azure ``/score`` body; ``input_string`` is one conversation or a list of them."""
    exp = EXPECTED_SCORE_FORMAT
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_kind(body)}", exp)
    unknown = sorted(set(body) - {"input_data", "params"})
    if unknown:
        raise BadRequest(f"unknown top-level key '{unknown[0]}' (known: input_data, params)", exp)
    data = body.get("input_data")
    if not isinstance(data, dict):
        raise BadRequest("'input_data' is missing or not an object", exp)
    unknown = sorted(set(data) - {"input_string", "parameters"})
    if unknown:
        raise BadRequest(f"unknown key input_data.{unknown[0]} (known: input_string, parameters)", exp)
    if not isinstance(body.get("params", {}), dict):
        raise BadRequest("'params' must be an object (usually {})", exp)
    items = data.get("input_string")
    if not isinstance(items, list) or not items:
        raise BadRequest("input_data.input_string must be a non-empty list of messages", exp)
    batched = all(isinstance(item, list) for item in items)
    if batched:
        conversations = [check_messages(c, f"input_data.input_string[{i}]", exp) for i, c in enumerate(items)]
    else:
        conversations = [check_messages(items, "input_data.input_string", exp)]
    return ParsedRequest(conversations, _score_parameters(data.get("parameters", {}), max_new_tokens_cap), batched)


def _score_parameters(raw, cap: int) -> GenerationParams:
    exp = EXPECTED_SCORE_FORMAT
    if not isinstance(raw, dict):
        raise BadRequest("input_data.parameters must be an object", exp)
    unknown = sorted(set(raw) - set(SCORE_PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown parameter '{unknown[0]}' (known: {', '.join(SCORE_PARAMETERS)})", exp)
    params = GenerationParams()
    if "max_new_tokens" in raw:
        params.max_new_tokens = _max_tokens(raw["max_new_tokens"], "parameters.max_new_tokens", cap, exp)
    if "temperature" in raw:
        params.temperature = float(_number(raw["temperature"], "parameters.temperature", 0, 100, exp))
    if "top_p" in raw:
        params.top_p = float(_number(raw["top_p"], "parameters.top_p", 0, 1, exp))
    if "do_sample" in raw:
        if not isinstance(raw["do_sample"], bool):
            raise BadRequest(f"parameters.do_sample must be true or false, not {_kind(raw['do_sample'])}", exp)
        params.do_sample = raw["do_sample"]
    if raw.get("return_full_text") not in (None, False):
        raise BadRequest("parameters.return_full_text: only false is supported (the reply alone is returned)", exp)
    if params.do_sample and params.top_p == 0:
        raise BadRequest("parameters.top_p must be above 0 when sampling", exp)
    return params


@dataclass
class Reply:
    """One finished reply: what the server hands the response builders, and what a client's
    ``stream_chat`` yields last (after the text pieces). ``None`` where the route did not say
    (an older ``/score`` server answers ``{"output": text}`` only): never an invented count."""

    text: str = ""
    finish_reason: str | None = "stop"  # "stop" (end of turn) or "length" (max_new_tokens cut it)
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    latency_s: float | None = None  # how long the caller waited for it, where the caller timed it (evaluation)


def _usage(replies: list[Reply]) -> dict:
    prompt = sum(r.prompt_tokens for r in replies)
    completion = sum(r.completion_tokens for r in replies)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def score_response(replies: list[Reply], *, model: str, batched_input: bool = False) -> dict:
    """``{"output": text}`` plus message/finish_reason/usage/model/id; lists when several conversations."""
    messages = [{"role": "assistant", "content": r.text} for r in replies]
    many = batched_input and len(replies) > 1
    return {
        "output": [r.text for r in replies] if many else replies[0].text,
        "message": messages if many else messages[0],
        "finish_reason": [r.finish_reason for r in replies] if many else replies[0].finish_reason,
        "usage": _usage(replies),
        "model": model,
        "id": new_id("score"),
    }


def score_reply(response) -> Reply:
    """A ``/score`` response as a :class:`Reply`, with the finish reason and usage where the server
    reports them (current servers do)."""
    body = response[0] if isinstance(response, list) and len(response) == 1 else response
    body = body if isinstance(body, dict) else {}
    finish = body.get("finish_reason")
    finish = finish[0] if isinstance(finish, list) and len(finish) == 1 else finish
    return Reply(score_output(response), finish if isinstance(finish, str) else None, *usage_counts(body.get("usage")))


def usage_counts(usage) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) of an OpenAI-style ``usage`` object; None for what is missing."""
    usage = usage if isinstance(usage, dict) else {}
    return tuple(v if isinstance(v, int) and not isinstance(v, bool) else None
                 for v in (usage.get("prompt_tokens"), usage.get("completion_tokens")))


def score_output(response) -> str:
    """The reply text of a ``/score`` response, from current and older Azure server shapes."""
    if isinstance(response, dict):
        if "output" in response:
            out = response["output"]
            return out if isinstance(out, str) else "\n".join(map(str, out))
        if "0" in response:  # older servers: {"0": "text"}
            return str(response["0"])
    if isinstance(response, list) and response:
        return score_output(response[0])
    if isinstance(response, str):
        return response
    raise ValueError(f"unrecognised scoring response: {json.dumps(response)[:200]}")


# ----------------------------------------------------------------------------- OpenAI chat completions
def parse_chat_request(body, *, max_new_tokens_cap: int = MAX_NEW_TOKENS_CAP) -> ParsedRequest:
    """Check an OpenAI chat-completions body. Fields the OpenAI client may send and that change
    nothing here (user, seed, penalties of 0, ...) are accepted; ones that would change the reply
    and cannot be honoured (n > 1, stop, tools) are refused rather than silently dropped."""
    exp = EXPECTED_CHAT_FORMAT
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {_kind(body)}", exp)
    conversation = check_messages(body.get("messages"), "messages", exp)
    params = GenerationParams(temperature=1.0, top_p=1.0, do_sample=True)  # OpenAI's defaults
    tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    params.max_new_tokens = (
        DEFAULT_MAX_NEW_TOKENS if tokens is None else _max_tokens(tokens, "max_tokens", max_new_tokens_cap, exp)
    )
    if body.get("temperature") is not None:
        params.temperature = float(_number(body["temperature"], "temperature", 0, 2, exp))
    if body.get("top_p") is not None:
        params.top_p = float(_number(body["top_p"], "top_p", 0, 1, exp))
        if params.top_p == 0:
            params.temperature = 0.0
    if body.get("n") not in (None, 1):
        raise BadRequest("n must be 1: this endpoint returns one choice per request", exp)
    for name in ("stop", "tools", "functions", "response_format", "logit_bias"):
        if body.get(name):
            raise BadRequest(f"'{name}' is not supported by this endpoint; leave it out", exp)
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise BadRequest(f"'{name}' is not supported by this endpoint; leave it out or set it to 0", exp)
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise BadRequest(f"stream must be true or false, not {_kind(stream)}", exp)
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object such as {'include_usage': true}", exp)
    return ParsedRequest(
        [conversation], params, stream=bool(stream), include_usage=bool(options.get("include_usage"))
    )


def chat_response(reply: Reply, *, model: str, id: str | None = None) -> dict:
    return {
        "id": id or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage([reply]),
    }


def chat_chunk(
    id: str, model: str, *, content: str | None = None, role: str | None = None,
    finish_reason: str | None = None, usage: dict | None = None, created: int | None = None,
) -> dict:
    """One ``chat.completion.chunk``; ``usage`` alone (no choices) is the include_usage chunk."""
    chunk = {"id": id, "object": "chat.completion.chunk", "created": created or int(time.time()), "model": model}
    if usage is not None and content is None and role is None and finish_reason is None:
        chunk["choices"] = []
    else:
        delta = {}
        if role:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def usage_of(reply: Reply) -> dict:
    return _usage([reply])


# ----------------------------------------------------------------------------- client-side builders
def build_score_request(messages: list[dict], params) -> dict:
    """The notebook's request shape, from :class:`GenerationParams` (or anything with the same four fields)."""
    return {
        "input_data": {
            "input_string": check_messages(messages),
            "parameters": {
                "temperature": params.temperature,
                "top_p": params.top_p,
                "do_sample": params.do_sample,
                "max_new_tokens": params.max_new_tokens,
            },
        },
        "params": {},
    }


def build_chat_request(messages: list[dict], params, *, stream: bool = False, model: str = "default") -> dict:
    return {
        "model": model,
        "messages": check_messages(messages, expected=EXPECTED_CHAT_FORMAT),
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature if params.do_sample else 0.0,
        "top_p": params.top_p,
        "stream": stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),  # OpenAI's way to ask for usage
    }


def error_body(message: str, *, type: str = "invalid_request_error", code: str | None = None) -> dict:
    """The error shape both routes return; the OpenAI client reads ``error.message``."""
    return {"error": {"message": message, "type": type, "code": code}}


def error_message(body) -> str | None:
    """The server's own message from an error body (ours, Azure's or FastAPI's), if any."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return None


def check_sendable(request, what: str = "the request") -> None:
    """Refuse, in one line, a request JSON cannot carry (NaN, Infinity, sets, objects): the HTTP client
    would fail on it with a traceback, or send ``NaN``, which is not JSON."""
    try:
        json.dumps(request, allow_nan=False)
    except ValueError as exc:
        problem = "holds NaN or Infinity" if "float" in str(exc) else str(exc).lower()
        raise SpecError(f"{what} {problem}, which JSON cannot carry; use finite numbers.") from None
    except (TypeError, RecursionError) as exc:
        raise SpecError(f"{what} cannot be sent as JSON ({str(exc).splitlines()[0]}); "
                        "use only strings, numbers, booleans, null, lists and objects.") from None
