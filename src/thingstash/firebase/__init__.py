"""The Firebase Realtime Database face's own logic (docs/firebase.md): one JSON tree seen over
thingstash's folders and things.

mapping.py and query.py are pure (stdlib, orjson and the core); tree.py reads and writes the tree
through model.Store methods only. The HTTP face is web/firebase/.
"""
