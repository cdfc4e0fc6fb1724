"""What the users' tests share: real keys (RSA and EC, made with `cryptography`), tokens signed
with them, and a real JWKS served over HTTP by a local server whose answers a test can change."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.example"
AUDIENCE = "thingstash-tests"


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        maker: Any = ECAlgorithm
        if self.alg.startswith(("RS", "PS")):
            maker = RSAAlgorithm
        elif self.alg == "EdDSA":
            maker = OKPAlgorithm
        jwk = dict(maker.to_jwk(public, as_dict=True))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **headers}
        )


def rsa_key(kid: str) -> Key:
    return Key(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> Key:
    return Key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def key_for(alg: str, kid: str) -> Key:
    """A new key for any asymmetric algorithm the verifier takes."""
    if alg.startswith(("RS", "PS")):
        return Key(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if alg == "EdDSA":
        return Key(kid, alg, ed25519.Ed25519PrivateKey.generate())
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return Key(kid, alg, ec.generate_private_key(curve))


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now - 10,
        "exp": now + 3600,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def unsigned(payload: dict[str, Any]) -> str:
    """A token with alg none, as Firebase's emulators make them."""
    return jwt.encode(payload, "", algorithm="none")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """A token 'signed' with HS256 using `secret` (an attacker's: the provider's public key)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


@dataclass
class JwksServer:
    """A provider's JWKS endpoint: what it answers can be changed while it runs."""

    keys: list[Key]
    cache_control: str | None = "public, max-age=600"
    status: int = 200
    body: bytes | None = None  # answered instead of the key set (garbage)
    delay: float = 0.0  # seconds before each answer (a slow provider)
    fetches: int = 0
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.fetches += 1
                time.sleep(owner.delay)
                body = owner.body
                if body is None:
                    body = json.dumps({"keys": [key.jwk for key in owner.keys]}).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                if owner.cache_control is not None:
                    self.send_header("Cache-Control", owner.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
