"""The environment a local function host gives the function it runs: clean, as on the platform."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TEMP",
    "TMP",
    "TZ",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
"""What a function inherits from this process's environment (those set): PATH, HOME, locale,
temporary folders and the like. Nothing else, so a developer's real cloud settings (AWS keys,
GOOGLE_APPLICATION_CREDENTIALS, CLOUDSDK_*) never reach a function."""


def function_env(platform_vars: Mapping[str, str], user_env: Mapping[str, str]) -> dict[str, str]:
    """A function's environment: `INHERITED_ENV`, then `platform_vars`, then `user_env` over them.

    `PYTHONPATH` is the user's `PYTHONPATH` entries first, then this process's `sys.path` (as
    absolute paths, those that exist, each once), so the function imports what this process can.
    """
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.update(platform_vars)
    env.update(user_env)
    paths = [path for path in user_env.get("PYTHONPATH", "").split(os.pathsep) if path]
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if os.path.exists(path) and path not in paths:
            paths.append(path)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
