"""Keys of a request's WSGI environ that the async front (serve/asgi.py) and the app (web/)
share: what the front did before calling the app, and what the app hands back to the front."""

# The front read the body already, as it arrived: `wsgi.input` holds it (up to the largest
# limit any route takes, and one byte more), CONTENT_LENGTH is still the announced one.
BODY_READ = "thingstash.body_read"
# The body was still arriving at its deadline (True): what arrived is not the body.
BODY_LATE = "thingstash.body_late"
# The body was not read: too many bodies arriving (why, for the refusal).
BODY_BUSY = "thingstash.body_busy"
# The app is called on an event loop (the async front): nothing in it may wait long (True).
ON_LOOP = "thingstash.on_loop"
# A stream's body (live.streamloop.LiveBody), which an async front drives as a coroutine
# rather than iterate it on a thread.
LIVE_BODY = "thingstash.live_body"
