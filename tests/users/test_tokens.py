"""ID tokens: a good one gives its User and the rules' `auth`; every kind of bad one is refused
with a reason that says which; a verified token is remembered until it expires."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.tokens import (
    AUDIENCE,
    ISSUER,
    Clock,
    JwksServer,
    Key,
    b64,
    claims,
    ec_key,
    hs256_with,
    key_for,
    rsa_key,
    unsigned,
)
from thingstash.core.config import Settings
from thingstash.users.keyset import KeySet
from thingstash.users.tokens import ProviderUnavailable, TokenRejected, User, Verifier


def verifier(provider: JwksServer, clock: Clock | None = None, **options: Any) -> Verifier:
    keys = KeySet(provider.url, clock=clock or Clock())
    return Verifier(keys=keys, issuer=ISSUER, audience=AUDIENCE, **options)


def rejected(verifier: Verifier, token: str) -> str:
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token)
    return caught.value.reason


@pytest.mark.parametrize("key_name", ["rsa1", "ec1"])
def test_a_good_token_gives_its_user(
    provider: JwksServer, key_name: str, request: pytest.FixtureRequest
) -> None:
    key: Key = request.getfixturevalue(key_name)
    given = claims(email="ada@example.com")
    user = verifier(provider).verify(key.sign(given))
    assert user == User(
        uid="user-1", claims=given, auth={"uid": "user-1", "provider": "custom", "token": given}
    )


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA"])
def test_other_asymmetric_algorithms_pass(provider: JwksServer, alg: str) -> None:
    key = key_for(alg, f"{alg}-key")
    provider.keys = [key]
    assert verifier(provider).verify(key.sign(claims())).uid == "user-1"


def test_many_tokens_one_fetch(provider: JwksServer, rsa1: Key, ec1: Key) -> None:
    check = verifier(provider)
    for number in range(20):
        key = rsa1 if number % 2 else ec1
        assert check.verify(key.sign(claims(sub=f"user-{number}"))).uid == f"user-{number}"
    assert provider.fetches == 1


def test_a_token_just_past_its_exp_passes_within_the_leeway(
    provider: JwksServer, rsa1: Key
) -> None:
    now = int(time.time())
    assert verifier(provider).verify(rsa1.sign(claims(exp=now - 10))).uid == "user-1"


def test_the_settings_make_the_verifier(provider: JwksServer, rsa1: Key) -> None:
    settings = Settings.from_env(
        {
            "THINGSTASH_AUTH_JWKS_URL": provider.url,
            "THINGSTASH_AUTH_ISSUER": ISSUER,
            "THINGSTASH_AUTH_AUDIENCE": AUDIENCE,
        }
    )
    made = Verifier.from_settings(settings)
    assert made is not None
    assert made.verify(rsa1.sign(claims())).uid == "user-1"
    assert Verifier.from_settings(Settings.from_env({})) is None


def test_every_kind_of_bad_token_is_refused_saying_which(
    provider: JwksServer, rsa1: Key, ec1: Key
) -> None:
    check = verifier(provider)
    now = int(time.time())
    stranger = rsa_key("rsa-1")  # claims a known key id, signs with another key
    cases = {
        "token expired": rsa1.sign(claims(exp=now - 120)),
        "token not yet valid (nbf is in the future)": rsa1.sign(claims(nbf=now + 120)),
        "token not yet valid (iat is in the future)": rsa1.sign(claims(iat=now + 120)),
        "token is for another audience (aud)": rsa1.sign(claims(aud="someone-else")),
        "token is from another issuer (iss)": rsa1.sign(claims(iss="https://evil.example")),
        "unsigned token (alg none) refused": unsigned(claims()),
        "shared-secret algorithm HS256 refused: only asymmetric signatures are accepted": (
            hs256_with(rsa1.public_pem, claims(), kid="rsa-1")
        ),
        "signed by an unknown key (kid 'rsa-9')": rsa_key("rsa-9").sign(claims()),
        "bad signature": stranger.sign(claims()),
        "token has no exp claim": rsa1.sign(claims(exp=None)),
        "token has no aud claim": rsa1.sign(claims(aud=None)),
        "token has no subject (sub)": rsa1.sign(claims(sub="")),
    }
    for reason, token in cases.items():
        assert rejected(check, token) == reason
    for garbage in [
        "garbage",
        "a.b.c",
        "",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "\ud800.e30.e30",
        "é.é.é",
        "a.b.c.d",
        "W10.e30.",
        "e30.e30.e30" + "A" * 40_000,
    ]:
        assert rejected(check, garbage).startswith("malformed token")
    # An ES256 token naming the RSA key's id: the key is bound to RS256.
    swapped = ec_key("rsa-1").sign(claims())
    assert rejected(check, swapped).startswith("algorithm refused")
    # An unsigned token with alg spelled otherwise, and an unsupported algorithm.
    header = b64(json.dumps({"alg": "None", "kid": "rsa-1"}).encode())
    assert rejected(check, f"{header}.{b64(b'{}')}.") == "unsigned token (alg none) refused"
    weird = b64(json.dumps({"alg": "XY999", "kid": "rsa-1"}).encode())
    assert "XY999 refused" in rejected(check, f"{weird}.{b64(b'{}')}.c2ln")


def test_a_verified_token_is_remembered_without_fetching_keys(
    provider: JwksServer, rsa1: Key
) -> None:
    clock = Clock()
    check = verifier(provider, clock)
    first = rsa1.sign(claims(sub="first"))
    assert check.verify(first).uid == "first"
    assert provider.fetches == 1
    clock.now += 100_000  # the key set is stale: a key asked now is fetched again
    assert check.verify(first).uid == "first"
    assert provider.fetches == 1
    assert check.verify(rsa1.sign(claims(sub="second"))).uid == "second"
    assert provider.fetches == 2


def test_the_cache_is_bounded(provider: JwksServer, rsa1: Key) -> None:
    clock = Clock()
    check = verifier(provider, clock, cache_size=1)
    first, second = rsa1.sign(claims(sub="first")), rsa1.sign(claims(sub="second"))
    check.verify(first)
    check.verify(second)  # pushes `first` out
    clock.now += 100_000
    check.verify(second)
    assert provider.fetches == 1
    check.verify(first)  # verified afresh: the stale key set is fetched
    assert provider.fetches == 2


def test_a_remembered_token_is_refused_once_expired(provider: JwksServer, rsa1: Key) -> None:
    check = verifier(provider, leeway=0)
    exp = int(time.time()) + 1
    token = rsa1.sign(claims(exp=exp))
    assert check.verify(token).uid == "user-1"
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    assert rejected(check, token) == "token expired"


def test_no_keys_ever_fetched_refuses_saying_so(provider: JwksServer, rsa1: Key) -> None:
    provider.status = 500
    with pytest.raises(ProviderUnavailable, match="could not be fetched"):
        verifier(provider).verify(rsa1.sign(claims()))


PROJECT = "demo-thingstash"


def firebase_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "auth_time": now - 60,
        "user_id": "uid-42",
        "sub": "uid-42",
        "iat": now - 30,
        "exp": now + 3570,
        "email": "ada@example.com",
        "email_verified": True,
        "firebase": {"identities": {"email": ["ada@example.com"]}, "sign_in_provider": "password"},
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def firebase_verifier(provider: JwksServer) -> Verifier:
    return Verifier(
        keys=KeySet(provider.url),
        issuer=f"https://securetoken.google.com/{PROJECT}",
        audience=PROJECT,
        firebase=True,
    )


def test_a_firebase_token_gives_firebases_auth(provider: JwksServer, rsa1: Key) -> None:
    given = firebase_claims()
    user = firebase_verifier(provider).verify(rsa1.sign(given))
    assert user.uid == "uid-42"
    assert user.auth == {"uid": "uid-42", "provider": "password", "token": given}
    anonymous = firebase_claims(firebase={"identities": {}, "sign_in_provider": "anonymous"})
    assert firebase_verifier(provider).verify(rsa1.sign(anonymous)).auth["provider"] == "anonymous"


def test_a_firebase_token_needs_an_auth_time_in_the_past(provider: JwksServer, rsa1: Key) -> None:
    check = firebase_verifier(provider)
    now = int(time.time())
    assert rejected(check, rsa1.sign(firebase_claims(auth_time=None))) == "token has no auth_time"
    assert (
        rejected(check, rsa1.sign(firebase_claims(auth_time=now + 600)))
        == "token's auth_time is in the future"
    )
    assert rejected(check, rsa1.sign(firebase_claims(aud="other-project"))).startswith(
        "token is for another audience"
    )


def test_the_emulator_mode_takes_unsigned_tokens_as_given() -> None:
    settings = Settings.from_env(
        {"THINGSTASH_AUTH_EMULATOR": "1", "THINGSTASH_FIREBASE_PROJECT": PROJECT}
    )
    assert settings.auth_emulator
    check = Verifier.from_settings(settings)
    assert check is not None
    given = firebase_claims(sign_in_provider=None)
    assert check.verify(unsigned(given)).auth == {
        "uid": "uid-42",
        "provider": "password",
        "token": given,
    }
    bare = {"sub": "someone"}  # the emulator's tokens may carry little: no exp, no iss
    assert check.verify(unsigned(bare)).auth == {
        "uid": "someone",
        "provider": "custom",
        "token": bare,
    }
    assert rejected(check, unsigned({"sub": "x", "exp": int(time.time()) - 120})) == "token expired"
    assert rejected(check, unsigned({"uid": "no-sub"})) == "token has no subject (sub)"
    assert rejected(check, "garbage").startswith("malformed token")
