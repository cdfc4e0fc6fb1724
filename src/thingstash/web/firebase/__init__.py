"""The Firebase Realtime Database REST face (docs/firebase.md): `<path>.json` over the same
store, served on its own port by `thingstash serve --firebase-port`."""
