"""The users' settings: THINGSTASH_AUTH_* together, or THINGSTASH_FIREBASE_PROJECT for all three;
a bad combination is a ConfigError naming the variable."""

from __future__ import annotations

import pytest

from thingstash.core.config import FIREBASE_JWKS_URL, ConfigError, Settings

JWKS = "https://login.example/.well-known/jwks.json"


def test_no_users_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.auth_jwks_url is None
    assert settings.firebase_project is None
    assert not settings.auth_emulator


def test_the_three_auth_settings() -> None:
    settings = Settings.from_env(
        {
            "THINGSTASH_AUTH_JWKS_URL": JWKS,
            "THINGSTASH_AUTH_ISSUER": "https://login.example/",
            "THINGSTASH_AUTH_AUDIENCE": "my-app",
        }
    )
    assert (settings.auth_jwks_url, settings.auth_issuer, settings.auth_audience) == (
        JWKS,
        "https://login.example/",
        "my-app",
    )


def test_a_firebase_project_sets_all_three() -> None:
    settings = Settings.from_env({"THINGSTASH_FIREBASE_PROJECT": "my-project-42"})
    assert settings.firebase_project == "my-project-42"
    assert settings.auth_jwks_url == FIREBASE_JWKS_URL
    assert settings.auth_issuer == "https://securetoken.google.com/my-project-42"
    assert settings.auth_audience == "my-project-42"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"THINGSTASH_AUTH_JWKS_URL": JWKS}, "THINGSTASH_AUTH_ISSUER"),
        (
            {"THINGSTASH_AUTH_JWKS_URL": JWKS, "THINGSTASH_AUTH_ISSUER": "https://x/"},
            "THINGSTASH_AUTH_AUDIENCE",
        ),
        ({"THINGSTASH_AUTH_AUDIENCE": "my-app"}, "THINGSTASH_AUTH_JWKS_URL"),
        (
            {
                "THINGSTASH_AUTH_JWKS_URL": "http://login.example/jwks",
                "THINGSTASH_AUTH_ISSUER": "https://x/",
                "THINGSTASH_AUTH_AUDIENCE": "a",
            },
            "THINGSTASH_AUTH_JWKS_URL",
        ),
        ({"THINGSTASH_FIREBASE_PROJECT": "Not A Project!"}, "THINGSTASH_FIREBASE_PROJECT"),
        (
            {"THINGSTASH_FIREBASE_PROJECT": "p", "THINGSTASH_AUTH_JWKS_URL": JWKS},
            "THINGSTASH_FIREBASE_PROJECT",
        ),
    ],
)
def test_bad_combinations_name_their_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_plain_http_keys_only_from_loopback() -> None:
    settings = Settings.from_env(
        {
            "THINGSTASH_AUTH_JWKS_URL": "http://127.0.0.1:8123/jwks",
            "THINGSTASH_AUTH_ISSUER": "https://x/",
            "THINGSTASH_AUTH_AUDIENCE": "a",
        }
    )
    assert settings.auth_jwks_url == "http://127.0.0.1:8123/jwks"


def test_the_emulator_flag() -> None:
    assert Settings.from_env({"THINGSTASH_AUTH_EMULATOR": "1"}).auth_emulator
    assert not Settings.from_env({"THINGSTASH_AUTH_EMULATOR": "0"}).auth_emulator
