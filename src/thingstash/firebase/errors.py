"""What can go wrong with a Firebase request, by kind: the errors the Firebase layer raises.

Each kind says what is wrong, with the text of Firebase's `{"error": ...}` body as its message;
none says how HTTP answers it: web/firebase/errors.py is the one table that maps each kind to
its status (and the web face raises these kinds too, for what it refuses itself).

Pure: stdlib only.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """A request Firebase refuses; `message` is the text of its `{"error": ...}` body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(Refusal):
    """The request, its parameters or its data are not what Firebase takes."""


class TooMuchToRead(Refusal):
    """A read that would pass its budget: bytes of JSON, sub-folders walked, or its time."""


class TooLargeToStore(Refusal):
    """A value that cannot be laid out in things within the thing size limit (a scalar or an
    array past it: only objects are split)."""


class NotFound(Refusal):
    """Nothing answers at this address (a REST path that does not end in `.json`)."""


class NotAllowed(Refusal):
    """A method the address does not answer."""


class PermissionDenied(Refusal):
    """The request's key may not do this."""


class Mismatch(Exception):
    """An `if-match` that does not hold: `current` is the location's value now."""

    def __init__(self, current: Any) -> None:
        super().__init__("ETag mismatch")
        self.current = current
