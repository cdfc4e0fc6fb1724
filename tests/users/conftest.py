"""The users' tests' fixtures: two real keys and a provider serving them (support/tokens.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.tokens import JwksServer, Key, ec_key, rsa_key


@pytest.fixture(scope="session")
def rsa1() -> Key:
    return rsa_key("rsa-1")


@pytest.fixture(scope="session")
def ec1() -> Key:
    return ec_key("ec-1")


@pytest.fixture
def provider(rsa1: Key, ec1: Key) -> Iterator[JwksServer]:
    server = JwksServer(keys=[rsa1, ec1])
    server.start()
    yield server
    server.stop()
