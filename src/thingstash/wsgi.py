"""The WSGI entry point the production server imports in each worker: `thingstash.wsgi:app`."""

from thingstash import create_app

app = create_app()
