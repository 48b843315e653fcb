"""A client for chat endpoints: local ones and Azure managed online endpoints alike.

``score`` posts Azure's ``/score`` request; ``chat`` builds that request from messages; ``stream_chat``
uses the OpenAI chat-completions route with server-sent events and ends with the finished
:class:`~azml_magics.scoring.Reply` (finish reason, usage). Every failure (wrong key, timeout,
endpoint gone, a refused request) becomes one :class:`~azml_magics.errors.RemoteError` line that
carries the server's own message and never the key. :class:`EndpointClients` keeps one open client
per endpoint so a chat reuses its connection instead of opening a new one for every message.
"""

from __future__ import annotations

import json
import threading
from typing import Iterator

from ... import scoring
from ...errors import RemoteError
from ...scoring import GenerationParams, Reply


class EndpointClient:
    """Talks to one endpoint. ``key`` goes into ``Authorization: Bearer``; it is never shown."""

    def __init__(
        self,
        scoring_uri: str,
        key: str,
        *,
        openai_base_url: str | None = None,
        timeout: float = 120.0,
        deployment: str | None = None,
    ):
        import httpx

        self.scoring_uri = scoring_uri
        self.openai_base_url = openai_base_url.rstrip("/") if openai_base_url else None
        self.timeout = timeout
        self.deployment = deployment
        self._key = key
        headers = {"Authorization": f"Bearer {key}"}
        if deployment:
            headers["azureml-model-deployment"] = deployment  # Azure routes to this deployment
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def __repr__(self) -> str:
        return f"EndpointClient(scoring_uri={self.scoring_uri!r}, openai_base_url={self.openai_base_url!r}, key=***)"

    def close(self) -> None:
        self._http.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ calls
    def score(self, request: dict) -> dict:
        """POST an Azure scoring request (e.g. the notebook's ``sample_score.json``) and return the JSON."""
        response = self._send("POST", self.scoring_uri, json=request)
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{self.scoring_uri} answered with something that is not JSON: {response.text[:200]!r}") from None

    def chat(self, messages: list[dict], params: GenerationParams | None = None) -> str:
        """One reply to ``messages`` through ``/score``."""
        return self.chat_reply(messages, params).text

    def chat_reply(self, messages: list[dict], params: GenerationParams | None = None) -> Reply:
        """One reply through ``/score``, with the finish reason and token counts the server reports."""
        request = scoring.build_score_request(messages, params or GenerationParams())
        response = self.score(request)
        try:
            return scoring.score_reply(response)
        except ValueError as exc:
            raise RemoteError(f"{self.scoring_uri}: {exc}") from None

    def stream_chat(self, messages: list[dict], params: GenerationParams | None = None) -> Iterator[str | Reply]:
        """Reply text piece by piece from the OpenAI route, then one :class:`Reply` (the whole text, the
        finish reason and the usage the server reported, None where it did not). Without an OpenAI
        route: the whole reply at once, then its Reply. Closing the iterator early closes the request,
        so the server stops generating."""
        params = params or GenerationParams()
        if not self.openai_base_url:
            reply = self.chat_reply(messages, params)
            yield reply.text
            yield reply
            return
        url = f"{self.openai_base_url}/chat/completions"
        body = scoring.build_chat_request(messages, params, stream=True)
        import httpx

        pieces: list[str] = []
        finish, usage = None, None
        try:
            with self._http.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(url, response)
                for data in _sse_data(response.iter_lines()):
                    if data == "[DONE]":
                        break
                    event = _json(data)
                    message = scoring.error_message(event) if "error" in event else None
                    if message:
                        raise RemoteError(self._clean(f"{url} stopped streaming: {message}"))
                    usage = event.get("usage") or usage  # the include_usage chunk, or on the last one
                    for choice in event.get("choices") or []:
                        finish = choice.get("finish_reason") or finish
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            pieces.append(piece)
                            yield piece
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc) from None
        yield Reply("".join(pieces), finish if isinstance(finish, str) else None, *scoring.usage_counts(usage))

    # ------------------------------------------------------------------ errors
    def _send(self, method: str, url: str, **kwargs):
        import httpx

        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc) from None
        if response.status_code >= 400:
            raise self._status_error(url, response)
        return response

    def _clean(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _transport_error(self, url: str, exc) -> RemoteError:
        import httpx

        if isinstance(exc, httpx.ConnectError):
            why = "nothing answers there (connection refused): the endpoint is down or was deleted; check its state and deploy again"
        elif isinstance(exc, httpx.TimeoutException):
            why = f"no answer within {self.timeout:g} s; ask for fewer tokens or raise the client timeout"
        elif isinstance(exc, httpx.RemoteProtocolError):
            why = "the connection closed mid-answer: the endpoint may have stopped; check its state"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return RemoteError(self._clean(f"{url}: {why}."))

    def _status_error(self, url: str, response) -> RemoteError:
        try:
            message = scoring.error_message(response.json())
        except ValueError:
            message = None
        message = message or response.text.strip()[:300] or response.reason_phrase
        status = response.status_code
        if status in (401, 403):
            text = f"{url} refused the key ({status}): {message}. Get the endpoint's current key and try again."
        elif status == 413:
            text = f"{url} refused the request as too large (413): {message}"
        elif status < 500:
            text = f"{url} refused the request ({status}): {message}"
        else:
            text = f"{url} failed ({status}): {message}"
        return RemoteError(self._clean(text))


class EndpointClients:
    """One open :class:`EndpointClient` per endpoint name, shared by every caller (thread-safe: the chat
    box calls from its own thread). A client whose address or key no longer matches the endpoint's
    (it was redeployed) is closed and replaced, so a stale one is never used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[tuple, EndpointClient]] = {}

    def __repr__(self) -> str:
        return f"EndpointClients({sorted(self._held)})"  # names only, never a key

    def get(self, name: str, scoring_uri: str, key: str, *, openai_base_url: str | None = None) -> EndpointClient:
        """The client for ``name`` at this address and key, created on first use."""
        target = (scoring_uri, openai_base_url, key)
        with self._lock:
            held = self._held.get(name)
            if held is not None and held[0] == target:
                return held[1]
            client = EndpointClient(scoring_uri, key, openai_base_url=openai_base_url)
            self._held[name] = (target, client)
        if held is not None:
            held[1].close()
        return client

    def drop(self, name: str) -> None:
        """Close and forget ``name``'s client (the endpoint is deleted or redeployed)."""
        with self._lock:
            held = self._held.pop(name, None)
        if held is not None:
            held[1].close()

    def close(self) -> None:
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for _, client in held:
            client.close()


def _sse_data(lines) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent-event stream (multi-line data joined by newlines)."""
    buffer: list[str] = []
    for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
        elif line.startswith("data:"):
            buffer.append(line[5:].lstrip(" "))
    if buffer:
        yield "\n".join(buffer)


def _json(data: str) -> dict:
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise RemoteError(f"the endpoint streamed an event that is not JSON: {data[:200]!r}") from None
    return event if isinstance(event, dict) else {}
