#!/usr/bin/env python3
"""Start `dagster dev` so that `kill -TERM <pid>` stops it and everything it started.

A process started in the background by a non-interactive shell (CI scripts, `nohup … &`, a test's
subprocess) inherits SIGINT = ignored, and `dagster dev` maps SIGTERM onto its SIGINT handler, so
SIGTERM is ignored and killing it with SIGKILL orphans webserver, daemon and code server. This
resets both signals and execs `dagster dev` in place: the PID you started is
`dagster dev` itself, and `kill -TERM <pid>` shuts all of it down.

    DAGSTER_HOME=$PWD/dagster_home .venv/bin/python scripts/dagster_dev.py -p 3000 &
    kill -TERM $!

Without `-w/--workspace` the repository's workspace.yaml is used, without `-h/--host` 127.0.0.1,
without DAGSTER_HOME the repository's dagster_home/; every other argument goes to `dagster dev`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def dagster_dev_argv(args: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "dagster", "dev"]
    if not {"-w", "--workspace"} & {a.split("=", 1)[0] for a in args}:
        argv += ["-w", str(REPO / "workspace.yaml")]
    if not {"-h", "--host"} & {a.split("=", 1)[0] for a in args}:
        argv += ["-h", "127.0.0.1"]
    return argv + args


def main() -> None:
    os.environ.setdefault("DAGSTER_HOME", str(REPO / "dagster_home"))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    argv = dagster_dev_argv(sys.argv[1:])
    os.execv(argv[0], argv)  # noqa: S606 - replacing this process (same PID) is the point


if __name__ == "__main__":
    main()
