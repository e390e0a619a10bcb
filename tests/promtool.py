"""Prometheus's own tool, for the alert rules and the exposition format.

Debian's ``prometheus`` package installs it (.ci/run does). The tests that
need it fail without it, naming what to install: alerts that are only parsed
are not proven.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def promtool(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS``; the caller asserts on its exit code and output."""
    tool = shutil.which("promtool")
    assert tool is not None, (
        "promtool is not installed: `apt-get install prometheus` (Debian) provides it; "
        "the alert rule tests and the /metrics check need it"
    )
    return subprocess.run(
        [tool, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
