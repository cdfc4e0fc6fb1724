"""The house's doors: the client and the settings load without the server's frameworks."""

from __future__ import annotations

import json
import subprocess
import sys


def test_client_and_config_load_neither_flask_nor_redis() -> None:
    code = (
        "import json, sys, thingstash.client, thingstash.core.config; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    assert "thingstash" in loaded  # the probe did import the package
    assert "flask" not in loaded
    assert "werkzeug" not in loaded
    assert "redis" not in loaded
