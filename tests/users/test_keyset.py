"""The key set: fetched lazily, once while its Cache-Control lasts, again after; kept while the
provider fails; fetched again (not too often) for a key id it does not hold."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.tokens import Clock, JwksServer, Key, rsa_key
from thingstash.users.keyset import (
    DEFAULT_MAX_AGE,
    MAX_MAX_AGE,
    MIN_MAX_AGE,
    KeySet,
    KeysUnavailable,
    UnknownKey,
    max_age,
)


def test_nothing_is_fetched_before_a_key_is_asked(provider: JwksServer) -> None:
    KeySet(provider.url)
    assert provider.fetches == 0


def test_keys_are_fetched_once_while_fresh(provider: JwksServer, rsa1: Key, ec1: Key) -> None:
    keys = KeySet(provider.url, clock=Clock())
    for _ in range(20):
        assert keys.key("rsa-1").algorithm_name == "RS256"
        assert keys.key("ec-1").algorithm_name == "ES256"
    assert provider.fetches == 1


def test_keys_are_fetched_again_after_max_age(provider: JwksServer) -> None:
    clock = Clock()
    provider.cache_control = "public, max-age=120, must-revalidate"
    keys = KeySet(provider.url, clock=clock)
    keys.key("rsa-1")
    clock.now += 119
    keys.key("rsa-1")
    assert provider.fetches == 1
    clock.now += 2
    keys.key("rsa-1")
    assert provider.fetches == 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, DEFAULT_MAX_AGE),
        ("public", DEFAULT_MAX_AGE),
        ("public, max-age=19302, must-revalidate, no-transform", 19302),
        ("max-age=1", MIN_MAX_AGE),
        ("max-age=99999999", MAX_MAX_AGE),
        ("no-cache", MIN_MAX_AGE),
        ("private, s-maxage=5, max-age=600", 600),
    ],
)
def test_max_age_follows_cache_control_within_bounds(header: str | None, seconds: float) -> None:
    assert max_age(header) == seconds


@pytest.mark.parametrize("failure", ["500", "garbage", "empty", "down"])
def test_the_last_good_keys_are_kept_while_the_provider_fails(
    provider: JwksServer, failure: str
) -> None:
    clock = Clock()
    keys = KeySet(provider.url, clock=clock, timeout=1)
    good = keys.key("rsa-1")
    if failure == "500":
        provider.status = 500
    elif failure == "garbage":
        provider.body = b"<html>oops</html>"
    elif failure == "empty":
        provider.body = b'{"keys": []}'
    else:
        provider.stop()
    clock.now += 10_000
    assert keys.key("rsa-1") is good
    if failure != "down":
        assert provider.fetches == 2
    # Failing, it is asked again only every few seconds, not on every token.
    assert keys.key("rsa-1") is good
    if failure != "down":
        assert provider.fetches == 2


def test_no_keys_ever_fetched_is_unavailable(provider: JwksServer) -> None:
    provider.status = 503
    keys = KeySet(provider.url, clock=Clock())
    with pytest.raises(KeysUnavailable, match="HTTP 503"):
        keys.key("rsa-1")


def test_a_rotated_key_is_picked_up(provider: JwksServer, rsa1: Key) -> None:
    clock = Clock()
    keys = KeySet(provider.url, clock=clock)
    keys.key("rsa-1")
    rotated = rsa_key("rsa-2")
    provider.keys = [rotated]
    clock.now += 6  # still fresh (max-age 600), but rsa-2 is unknown: fetched again
    assert keys.key("rsa-2").key_id == "rsa-2"
    assert provider.fetches == 2
    assert keys.key("rsa-2").key_id == "rsa-2"
    assert provider.fetches == 2


def test_unknown_key_ids_fetch_at_most_once_every_few_seconds(provider: JwksServer) -> None:
    clock = Clock()
    keys = KeySet(provider.url, clock=clock, refetch_interval=5)
    keys.key("rsa-1")
    for name in range(50):
        with pytest.raises(UnknownKey):
            keys.key(f"made-up-{name}")
    assert provider.fetches == 1  # the first fetch was under 5 s ago
    clock.now += 6
    with pytest.raises(UnknownKey):
        keys.key("made-up")
    assert provider.fetches == 2


def test_threads_asking_at_once_share_one_fetch(provider: JwksServer) -> None:
    provider.delay = 0.3
    keys = KeySet(provider.url)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: keys.key("ec-1").key_id, range(32)))
    assert found == ["ec-1"] * 32
    assert provider.fetches == 1


def test_stale_keys_serve_while_one_thread_waits_on_a_slow_provider(
    provider: JwksServer,
) -> None:
    clock = Clock()
    keys = KeySet(provider.url, clock=clock)
    keys.key("rsa-1")
    clock.now += 10_000
    provider.delay = 1.0
    fetching = threading.Thread(target=keys.key, args=("rsa-1",))
    fetching.start()
    while provider.fetches < 2:
        time.sleep(0.01)
    started = time.monotonic()
    assert keys.key("rsa-1").key_id == "rsa-1"  # the stale key, without waiting
    assert time.monotonic() - started < 0.5
    fetching.join()
    assert provider.fetches == 2


def test_shared_secrets_in_a_key_set_are_no_keys(provider: JwksServer) -> None:
    secret = {"kty": "oct", "kid": "shared", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}
    provider.body = json.dumps({"keys": [secret, provider.keys[0].jwk]}).encode()
    keys = KeySet(provider.url, clock=Clock())
    assert keys.key("rsa-1").key_id == "rsa-1"
    with pytest.raises(UnknownKey):
        keys.key("shared")
    provider.body = json.dumps({"keys": [secret]}).encode()
    with pytest.raises(KeysUnavailable, match="no public keys"):
        KeySet(provider.url).key("shared")


def test_an_unnamed_only_key_serves_tokens_naming_none(provider: JwksServer) -> None:
    unnamed = {k: v for k, v in provider.keys[0].jwk.items() if k != "kid"}
    provider.body = json.dumps({"keys": [unnamed]}).encode()
    assert KeySet(provider.url).key(None).algorithm_name == "RS256"
