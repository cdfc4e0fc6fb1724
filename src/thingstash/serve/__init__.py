"""Running the service: granian (server.py), the embedded Redis (embedded.py), and processes that
end with `thingstash serve` (lifetime.py). No Flask and no Redis client here.
"""
