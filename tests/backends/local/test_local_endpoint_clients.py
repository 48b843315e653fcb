"""The local backend keeps one HTTP client per endpoint: chats reuse it (and its connection), a redeploy
never gets the stale one, and deleting the endpoint or closing the backend closes it."""

from __future__ import annotations

import psutil
import pytest

from azml_magics import scoring
from azml_magics.backends.local import LocalBackend, endpoints
from azml_magics.errors import NotFound

NAME = "ep-clients"
USER = [{"role": "user", "content": "Say hello."}]
GREEDY = scoring.GenerationParams(do_sample=False, max_new_tokens=4)


def _our_connections(port: int) -> list[int]:
    """Local ports of this process's open TCP connections to ``port``."""
    return sorted(c.laddr.port for c in psutil.Process().net_connections("tcp")
                  if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


@pytest.fixture
def backend(tmp_path):
    backend = LocalBackend()
    backend.connect({"home": str(tmp_path / "home")})
    yield backend
    backend.close()
    endpoints.stop_endpoint(backend.home, NAME)  # never leave a server behind


def test_chats_reuse_one_client_until_the_endpoint_is_redeployed_or_deleted(backend, tiny_model_dir):
    port = endpoints.start_endpoint(backend.home, NAME, tiny_model_dir, model_ref="tiny:1").details["port"]
    first = backend.endpoint_client(NAME)
    request = scoring.build_score_request(USER, GREEDY)

    assert scoring.score_output(backend.invoke(NAME, request))
    one = _our_connections(port)
    assert scoring.score_output(backend.invoke(NAME, request))
    assert len(one) == 1 and _our_connections(port) == one  # the second message went over the same connection
    assert list(backend.stream_chat(NAME, USER, GREEDY))[-1].text
    assert backend.endpoint_client(NAME) is first and not first.closed

    # redeployed behind this backend's back (another kernel): new port and key, a new client
    endpoints.stop_endpoint(backend.home, NAME)
    endpoints.start_endpoint(backend.home, NAME, tiny_model_dir, model_ref="tiny:1")
    assert scoring.score_output(backend.invoke(NAME, request))
    second = backend.endpoint_client(NAME)
    assert second is not first and first.closed

    backend.close()  # a disconnect closes what it holds; the endpoint keeps running
    assert second.closed
    assert list(backend.stream_chat(NAME, USER, GREEDY))[-1].text
    third = backend.endpoint_client(NAME)
    assert third is not second and not third.closed

    backend.delete_endpoint(NAME)
    assert third.closed
    with pytest.raises(NotFound, match=f"no local endpoint named '{NAME}'"):
        backend.invoke(NAME, request)
