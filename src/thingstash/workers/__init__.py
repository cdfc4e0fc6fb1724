"""The WSGI entry points granian imports in each worker: `thingstash.workers.native:app` and
`thingstash.workers.firebase:app` (`thingstash serve --firebase-port`)."""
