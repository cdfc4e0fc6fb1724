"""Users: who a request's ID token says it comes from (a JWT signed by an identity provider, or
Firebase Authentication), verified against the provider's keys; no Flask, no Redis. What the
rules see of a user (`auth`) is made here. API.md, "Users and rules".

- tokens.py: `Verifier.verify(token) -> User` (uid, claims, and the rules' `auth`), or
  `TokenRejected(reason)` saying what is wrong (the web layer's 401); the emulator mode.
- keyset.py: the provider's JSON Web Key Set, fetched lazily, cached per its Cache-Control and
  kept while the provider is unreachable.
"""
