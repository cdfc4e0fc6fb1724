"""live/streamloop.py: the one loop every stream runs, stepped here by hand (what a driver does)
with a face that sends each change's path: what the client of a stream is sent, and when."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from thingstash.core.model import Event, StorageUnavailable
from thingstash.live.hub import Delivery
from thingstash.live.streamloop import (
    RETRY_S,
    Ended,
    Loop,
    Pause,
    Take,
    Work,
    stream_loop,
)

KEEPALIVE, REVOKED, WAITING = b": keep-alive\n\n", b": revoked\n\n", b": waiting\n\n"


@dataclass
class PathsFace:
    """Sends `data: <path>` for each change; `failures` reads fail first (the store away),
    then, when `refused`, the stream ends with a last word."""

    gather_s: float = 0.0
    rest_s: float = 0.0
    blocking: bool = True
    failures: int = 0
    refused: bool = False
    name: str = "stream of /a/"
    keepalive_frame: bytes = KEEPALIVE
    revoked_frame: bytes = REVOKED
    waiting_frame: bytes | None = WAITING
    noted: list[str] = field(default_factory=list)
    lagged: bool = False
    produced: int = 0

    @property
    def pending(self) -> bool:
        return bool(self.noted) or self.lagged

    def note(self, deliveries: list[Delivery], lagging: bool) -> None:
        self.lagged = self.lagged or lagging
        self.noted += [delivery.event.path for delivery in deliveries]

    def produce(self) -> list[bytes]:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailable("Redis is away")
        if self.refused:
            raise Ended(b"event: cancel\ndata: too big\n\n")
        self.produced += 1
        frames = [b"data: caught up\n\n"] if self.lagged else []
        frames += [b"data: " + path.encode() + b"\n\n" for path in self.noted]
        self.noted, self.lagged = [], False
        return frames


def delivered(*paths: str) -> tuple[list[Delivery], bool, bool]:
    deliveries = [
        Delivery(Event(f"1-{i}", "put", path, None), (1, i), b"") for i, path in enumerate(paths)
    ]
    return deliveries, False, False


class Client:
    """Steps a loop as a driver would, recording what it sends; `Work` is called at once."""

    def __init__(self, steps: Loop) -> None:
        self.steps = steps
        self.sent: list[bytes] = []
        self.ended = False

    def until_waiting(self, reply: Any = None) -> Take | Pause:
        """Answer the last step with `reply`, then run until the loop waits: what it waits on."""
        error: Exception | None = None
        while True:
            try:
                step = self.steps.send(reply) if error is None else self.steps.throw(error)
            except StopIteration:
                self.ended = True
                return Pause(0)
            reply = error = None
            if isinstance(step, bytes):
                self.sent.append(step)
            elif isinstance(step, Work):
                try:
                    reply = step.call()
                except Exception as caught:
                    error = caught
            else:
                return step


def start(face: PathsFace, allowed: list[bool] | None = None, keepalive: float = 15) -> Client:
    answer = allowed if allowed is not None else [True]
    client = Client(stream_loop(face, [b": open\n\n"], lambda: answer[0], keepalive, lambda: False))
    return client


def test_it_sends_the_opening_then_each_change_as_it_comes() -> None:
    face = PathsFace()
    client = start(face)
    assert isinstance(client.until_waiting(), Take)
    assert client.sent == [b": open\n\n"]
    assert isinstance(client.until_waiting(delivered("a/1", "a/2")), Take)
    assert client.sent[1:] == [b"data: a/1\n\ndata: a/2\n\n"]  # a take: one write


def test_a_burst_is_gathered_for_gather_s_then_sent_once() -> None:
    face = PathsFace(gather_s=0.1)
    client = start(face)
    client.until_waiting()
    waits = client.until_waiting(delivered("a/1"))
    assert isinstance(waits, Take) and 0 < waits.timeout <= 0.1  # the rest of the burst
    assert client.sent == [b": open\n\n"] and face.produced == 0
    client.until_waiting(delivered("a/2"))
    time.sleep(waits.timeout)  # (as the take would have waited)
    client.until_waiting(None)  # gather_s passed
    assert client.sent[1:] == [b"data: a/1\n\ndata: a/2\n\n"] and face.produced == 1


def test_after_a_send_it_rests_so_a_stream_of_changes_goes_out_in_few_writes() -> None:
    face = PathsFace(rest_s=0.1)
    client = start(face)
    client.until_waiting()
    assert client.until_waiting(delivered("a/1")) == Pause(0.1, rest=True)
    assert client.sent[1:] == [b"data: a/1\n\n"]


def test_a_quiet_stream_gets_a_keepalive_each_keepalive_seconds() -> None:
    client = start(PathsFace(), keepalive=0.5)
    waits = client.until_waiting()
    assert isinstance(waits, Take) and 0.4 < waits.timeout <= 0.5
    client.until_waiting(None)  # nothing came
    assert client.sent[1:] == [KEEPALIVE]


@pytest.mark.parametrize("when", ["keep-alive", "change"])
def test_a_stream_no_longer_allowed_gets_its_last_words_and_ends(when: str) -> None:
    allowed = [True]
    client = start(PathsFace(), allowed)
    client.until_waiting()
    allowed[0] = False
    client.until_waiting(None if when == "keep-alive" else delivered("a/1"))
    assert client.ended
    assert client.sent == [b": open\n\n", REVOKED]  # nothing of the change


def test_while_the_store_is_away_it_waits_and_then_sends_what_it_missed() -> None:
    face = PathsFace(failures=2)
    client = start(face, keepalive=15)
    client.until_waiting()
    assert client.until_waiting(delivered("a/1")) == Pause(RETRY_S)
    assert client.until_waiting() == Pause(RETRY_S)
    assert client.sent[1:] == [WAITING, WAITING]  # the stream is kept open meanwhile
    assert isinstance(client.until_waiting(), Take)
    assert client.sent[3:] == [b"data: a/1\n\n"] and not client.ended


def test_a_lag_is_caught_up_by_the_face() -> None:
    face = PathsFace()
    client = start(face)
    client.until_waiting()
    client.until_waiting(([], True, False))
    assert client.sent[1:] == [b"data: caught up\n\n"]


def test_a_face_may_end_its_stream_with_last_words() -> None:
    client = start(PathsFace(refused=True))
    client.until_waiting()
    client.until_waiting(delivered("a/1"))
    assert client.ended and client.sent[1:] == [b"event: cancel\ndata: too big\n\n"]


def test_it_ends_when_the_subscription_is_closed() -> None:
    client = start(PathsFace())
    client.until_waiting()
    client.until_waiting(([], False, True))
    assert client.ended and client.sent == [b": open\n\n"]
