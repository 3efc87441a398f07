"""bubblewrap for the sandbox tests (the one place this logic lives).

The environments tests run real commands in real sandboxes. When ``bwrap`` is
missing, :func:`install` installs Debian's ``bubblewrap`` package with apt-get (as
tests/_postgres.py does for PostgreSQL); only when that is impossible (not root, no
apt-get) are the tests skipped, with the reason. A ``bwrap`` that is installed but
cannot start a sandbox is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def install() -> str | None:
    """Install Debian's ``bubblewrap`` package if needed; return why not, or ``None``."""
    if shutil.which("bwrap") is not None:
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return "bubblewrap is not installed and cannot be (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "bubblewrap"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}"
    return None if shutil.which("bwrap") is not None else "apt-get ran but no bwrap was found"
