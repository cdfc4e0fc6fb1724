"""The Firebase Realtime Database REST face (docs/firebase.md): `<path>.json` over the same
store, served on its own port by `thingstash serve --firebase-port`.

app.py builds it; views.py is its door, sending each request to its verb: reads.py (GET,
queries, shallow, export; stream.py for event streams), writes.py (PUT, POST, PATCH, DELETE,
multi-path), rules.py (the rules document). protocol.py reads a request's parts and shapes its
answer, access.py is the face's key check, errors.py the one table from errors to answers."""
