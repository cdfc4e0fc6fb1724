"""The WSGI entry point the production server imports in each worker: `thingstash.wsgi:app`."""

from thingstash import create_app, server

app = create_app()
# Open watch streams end (and the expiry listener stops) when the worker is told to stop.
server.on_worker_shutdown(app.extensions["thingstash.live"].stop)
