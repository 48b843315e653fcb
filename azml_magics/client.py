"""A client for chat endpoints: local ones and Azure managed online endpoints alike.

``score`` posts Azure's ``/score`` request; ``chat`` builds that request from messages; ``stream_chat``
uses the OpenAI chat-completions route with server-sent events. Every failure (wrong key, timeout,
endpoint gone, a refused request) becomes one :class:`~azml_magics.errors.RemoteError` line that
carries the server's own message and never the key.
"""

from __future__ import annotations

import json
from typing import Iterator

from . import scoring
from .backends.base import ChatParams
from .errors import RemoteError


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

    def chat(self, messages: list[dict], params: ChatParams | None = None) -> str:
        """One reply to ``messages`` through ``/score``."""
        request = scoring.build_score_request(messages, params or ChatParams())
        response = self.score(request)
        try:
            return scoring.score_output(response)
        except ValueError as exc:
            raise RemoteError(f"{self.scoring_uri}: {exc}") from None

    def stream_chat(self, messages: list[dict], params: ChatParams | None = None) -> Iterator[str]:
        """Reply text piece by piece from the OpenAI route; without one, the whole reply at once."""
        params = params or ChatParams()
        if not self.openai_base_url:
            yield self.chat(messages, params)
            return
        url = f"{self.openai_base_url}/chat/completions"
        body = scoring.build_chat_request(messages, params, stream=True)
        import httpx

        try:
            with self._http.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(url, response)
                for data in _sse_data(response.iter_lines()):
                    if data == "[DONE]":
                        return
                    event = _json(data)
                    message = scoring.error_message(event) if "error" in event else None
                    if message:
                        raise RemoteError(self._clean(f"{url} stopped streaming: {message}"))
                    for choice in event.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc) from None

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
