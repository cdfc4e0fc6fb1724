"""The entry points of the Firebase face's workers (`thingstash serve --firebase-port`): `front`
on the async front (serve/asgi.py), the WSGI `app` on threads."""

import os
import signal

from thingstash.core.config import Settings
from thingstash.serve import server
from thingstash.serve.asgi import AsyncFront
from thingstash.serve.lifetime import die_with_parent
from thingstash.web import bodies, capacity, live
from thingstash.web.firebase.app import create_firebase_app

if os.environ.get("THINGSTASH_SERVE_PID"):
    # As thingstash.workers.native: a Ctrl-C is the server's to handle; go when `serve` goes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL, int(os.environ["THINGSTASH_SERVE_PID"]))

app = create_firebase_app()
# Open streams end when the worker is told to stop (as thingstash.workers.native's watches):
# the app's live parts (web/live.py).
# A late body is answered 408 while its read still waits (web/bodies.py).
server.expose_protocol(bodies.PROTOCOL)
server.on_worker_shutdown(live.of(app).close)

# The async front's entry point (Settings.front, serve/asgi.py): the same app behind an event loop.
_settings = Settings.from_env()
front = AsyncFront(
    app,
    lambda environ: _settings.max_body,
    _settings.body_timeout,
    capacity.Places(_settings.max_bodies, _settings.max_bodies_per_client),
)
