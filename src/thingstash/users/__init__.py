"""Users: who a request's ID token says it comes from (a JWT signed by an identity provider, or
Firebase Authentication), verified against the provider's keys; no Flask, no Redis. What the
rules see of a user (`auth`) is made here. API.md, "Users and rules".
"""
