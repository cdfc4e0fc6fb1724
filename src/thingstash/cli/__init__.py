"""The `thingstash` command line: `serve` (main.py), `keys`, `index` and the client commands, which
open their store one shared way (stores.py)."""
