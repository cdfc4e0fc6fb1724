"""The entry points the production server imports in each native worker: `front` on the async
front (serve/asgi.py), the WSGI `app` on threads (`thingstash.workers.native:app`)."""

import os
import signal

from thingstash.core.config import Settings
from thingstash.serve import server
from thingstash.serve.asgi import AsyncFront
from thingstash.serve.lifetime import die_with_parent
from thingstash.web import bodies, capacity, imports, live
from thingstash.web.app import create_app

if os.environ.get("THINGSTASH_SERVE_PID"):
    # A terminal's Ctrl-C reaches the workers too; `serve` stops them with SIGTERM. Ignored from
    # the first line of ours a worker runs, not only once granian has set its handlers (see
    # server.on_worker_shutdown), so a Ctrl-C while the app loads does not strand the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A granian worker of `thingstash serve`: go when the server goes, even if it was SIGKILLed.
    die_with_parent(signal.SIGKILL, int(os.environ["THINGSTASH_SERVE_PID"]))

app = create_app()
# Open watch streams end (and the expiry listener stops) when the worker is told to stop: the
# app's live parts (web/live.py).
# A late body is answered 408 while its read still waits (web/bodies.py).
server.expose_protocol(bodies.PROTOCOL)
server.on_worker_shutdown(live.of(app).stop)

# The async front's entry point (Settings.front, serve/asgi.py): the same app behind an event loop.
_settings = Settings.from_env()
front = AsyncFront(
    app,
    lambda environ: (
        _settings.max_import_body if environ["PATH_INFO"] == imports.PATH else _settings.max_body
    ),
    _settings.body_timeout,
    capacity.Places(_settings.max_bodies, _settings.max_bodies_per_client),
)
