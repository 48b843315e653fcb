"""A loopback CONNECT proxy that resolves ``*.localhost`` to 127.0.0.1.

Why: the SDK builds the storage URL ``https://<account>.blob.<suffixes.storage>``; with the storage
suffix ``localhost:PORT`` that host does not resolve here (glibc has no ``*.localhost`` rule and we
do not edit /etc/hosts). Clients reach it through the standard ``HTTPS_PROXY`` variable (with
``NO_PROXY=127.0.0.1`` so everything else goes direct); TLS stays end to end, the proxy only pipes
bytes. Any host outside ``*.localhost`` is refused with 403: nothing leaves loopback. ``route(host, port)``
may send a connection to another loopback port (the storage gate, see storage_gate.py).
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > 65536:
                return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) < 2 or parts[0].upper() != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = parts[1].rpartition(":")
        if not (host == "localhost" or host.endswith(".localhost")) or not port.isdigit():
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.route(host, int(port))), timeout=10)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    socks = [a, b]
    try:
        while True:
            readable, _, broken = select.select(socks, [], socks, 60)
            if broken or not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class LocalhostProxy:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is what HTTPS_PROXY gets."""

    def __init__(self, route=None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.route = route or (lambda host, port: port)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator-proxy", daemon=True)

    def start(self) -> "LocalhostProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
