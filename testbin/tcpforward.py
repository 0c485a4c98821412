"""A loopback TCP forwarder a test owns, to cut one client off from the apiserver.

The fault tests point the operator's kubeconfig at ``127.0.0.1:<forwarder port>`` instead of
the apiserver's port; nothing else goes through the forwarder, so a partition touches only
the traffic the test created. Why not a network namespace with a veth and iptables: the
apiserver listens on 127.0.0.1 only (testbin/localcluster.py), which no other namespace can
reach without exactly such a forwarder on the host side; and this one needs no privileges.

``partition()`` behaves like a firewall that DROPs packets (the hard case for a client): open
connections stay open but nothing crosses them any more, in either direction, and new
connections are accepted but never reach the apiserver, so the client sees no error, only
silence, until its own timeouts fire. Those connections stay dead after ``heal()`` (a real
partition longer than TCP's retransmission timeout ends them the same way); connections
opened after ``heal()`` work.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: socket.socket
    upstream: socket.socket | None
    dead: bool = False  # opened before or during a partition: never relays again


@dataclass
class Forwarder:
    """``127.0.0.1:port`` -> ``127.0.0.1:target_port``, with partition()/heal()."""

    target_port: int
    port: int = 0
    #: connections accepted while partitioned (the client timed out and tried again)
    accepted_while_partitioned: int = 0
    _listener: socket.socket | None = None
    _links: list[_Link] = field(default_factory=list)
    _partitioned: bool = False
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Forwarder:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        threading.Thread(target=self._accept, name="forwarder-accept", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def partition(self) -> None:
        with self._lock:
            self._partitioned = True
            self.accepted_while_partitioned = 0
            for link in self._links:
                link.dead = True

    def heal(self) -> None:
        with self._lock:
            self._partitioned = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links, self._links = self._links, []
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for link in links:
            for end in (link.client, link.upstream):
                if end is not None:
                    end.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    client.close()
                    return
                partitioned = self._partitioned
                if partitioned:
                    self.accepted_while_partitioned += 1
            upstream = None
            if not partitioned:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    client.close()  # the apiserver is down: refuse, as it would
                    continue
            link = _Link(client, upstream, dead=partitioned)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._relay, args=(link,), daemon=True).start()

    def _relay(self, link: _Link) -> None:
        socks = [link.client] + ([link.upstream] if link.upstream is not None else [])
        try:
            while not self._closed:
                readable, _, _ = select.select(socks, [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        if not link.dead:
                            return  # an end closed the connection: close the other
                        # A partitioned link drops everything, the close included.
                        socks.remove(sock)
                        continue
                    if link.dead:
                        continue  # dropped on the floor
                    other = link.upstream if sock is link.client else link.client
                    assert other is not None
                    other.sendall(data)
                if not socks:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            for end in (link.client, link.upstream):
                if end is not None:
                    end.close()
