"""The vocabulary every layer shares: settings, documents, paths, push ids, ordering, the
model's records and errors with the `Store` protocol, queries, export lines and API keys. Pure:
no framework, no Redis, no HTTP, no I/O."""
