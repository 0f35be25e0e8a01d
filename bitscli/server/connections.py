"""Connections that cannot be held forever: header, body-rate and write timeouts, and a cap on open connections."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("bitscli.serve")

BACKLOG = 128  # the listen queue, and so the most connections asyncio accepts at once before any is looked at
RESERVED_DESCRIPTORS = 32 + BACKLOG  # files served or written, session records, the log; one batch of accepts
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Limits:
    header_timeout: float  # from connecting (or the last response) to a complete request header section
    body_timeout: float  # the window over which a request body must keep up min_body_rate
    min_body_rate: int  # bytes a second; Apache's mod_reqtimeout uses 500
    max_connections: int

    @property
    def tick(self) -> float:
        return max(0.25, min(self.header_timeout, self.body_timeout) / 4)


def connection_cap(wanted: int) -> int:
    """Raise the descriptor limit as far as allowed, and keep the cap below it: a server out of descriptors
    cannot even accept, and asyncio logs a traceback for every failed accept."""
    try:
        import resource  # POSIX; Windows has no descriptor limit of this kind
    except ImportError:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS))


class _Flow(FlowControl):
    """uvicorn's flow control, noting whether the server itself paused reading (then the client is not slow)."""

    paused_since_check = False

    def pause_reading(self) -> None:
        self.paused_since_check = True
        super().pause_reading()


WAITING, BODY, WORKING, WRITING = "waiting", "body", "working", "writing"


def protocol_class(limits: Limits) -> type[asyncio.Protocol]:
    """An h11 protocol for uvicorn that enforces ``limits`` (uvicorn alone never times out a connection that
    has not sent a whole request, nor a body that stalls)."""

    idle: dict[GuardedH11Protocol, None] = {}  # connections waiting for a request, oldest first

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = int(limits.header_timeout)
            self._timer: asyncio.TimerHandle | None = None
            self._phase = WAITING
            self._since = 0.0
            self._received = 0
            self._mark = 0  # bytes received (or write buffer size) when the current window began

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.flow = _Flow(transport)
            if len(self.connections) > limits.max_connections and not _evict_oldest_idle(self):
                log.warning("connection limit (%d) reached: a new connection was refused", limits.max_connections)
                transport.write(BUSY)
                transport.close()
                return
            self._enter(WAITING)
            self._timer = self.loop.call_later(limits.tick, self._check)

        def connection_lost(self, exc: Exception | None) -> None:
            idle.pop(self, None)
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._received += len(data)
            super().data_received(data)
            if self._phase == WAITING and self.conn.their_state is not h11.IDLE:
                idle.pop(self, None)  # a request began: no longer the first to go when the cap is reached

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._enter(WAITING)

        def _enter(self, phase: str) -> None:
            self._phase, self._since = phase, self.loop.time()
            self._mark = self.transport.get_write_buffer_size() if phase == WRITING else self._received
            self.flow.paused_since_check = False  # type: ignore[attr-defined]
            if phase == WAITING:
                idle[self] = None
            else:
                idle.pop(self, None)

        def _check(self) -> None:
            if self.transport.is_closing():
                return
            elapsed = self.loop.time() - self._since
            their = self.conn.their_state
            if their is h11.IDLE:
                if self._phase != WAITING:
                    self._enter(WAITING)
                elif elapsed >= limits.header_timeout:
                    self._drop(f"no complete request in {limits.header_timeout:g} s", TIMED_OUT * (self._received > 0))
                    return
            elif their is h11.SEND_BODY:
                if self._phase != BODY:
                    self._enter(BODY)
                elif elapsed >= limits.body_timeout:
                    paused = self.flow.read_paused or self.flow.paused_since_check  # type: ignore[attr-defined]
                    if not paused and self._received - self._mark < limits.min_body_rate * elapsed:
                        self._drop(f"request body slower than {limits.min_body_rate} bytes/s", b"")
                        return
                    self._enter(BODY)
            elif self.flow.write_paused:  # the client does not read what we send
                if self._phase != WRITING:
                    self._enter(WRITING)
                elif elapsed >= limits.body_timeout:
                    if self.transport.get_write_buffer_size() >= self._mark:
                        self._drop(f"client read nothing for {limits.body_timeout:g} s", None)
                        return
                    self._enter(WRITING)
            elif self._phase != WORKING:
                self._enter(WORKING)
            self._timer = self.loop.call_later(limits.tick, self._check)

        def _drop(self, why: str, last_words: bytes | None) -> None:
            """Close the connection; None aborts it (its send buffer would never drain)."""
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("%s dropped: %s", client, why)
            if last_words is None:
                self.transport.abort()
                return
            if last_words and self.conn.our_state is h11.IDLE:
                self.transport.write(last_words)
            self.transport.close()

    def _evict_oldest_idle(newcomer: GuardedH11Protocol) -> bool:
        """At the cap, the connection that has waited longest without starting a request makes room."""
        for victim in idle:
            if victim is not newcomer:
                idle.pop(victim)
                victim.transport.close()
                log.info("connection limit (%d) reached: closed the longest idle connection", limits.max_connections)
                return True
        return False

    return GuardedH11Protocol
