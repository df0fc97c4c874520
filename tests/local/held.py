"""`hold`: what the test functions of every local host run to stay busy until a test lets them go.

Imported by the functions' own modules (`lambda_handlers`, `cloud_functions_targets`,
`azure_apps`) in the host's process, from this folder on its PYTHONPATH.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def hold(folder: str, tag: str) -> int:
    """Leave `<tag>.started` in `folder`, wait there for a `release` file (60 s at most), return
    the pid."""
    place = Path(folder)
    (place / f"{tag}.started").touch()
    deadline = time.monotonic() + 60
    while not (place / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()
