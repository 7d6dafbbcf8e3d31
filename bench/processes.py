"""Commands run in a process of their own, timed from start to exit."""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], folder: Path, env: dict[str, str] | None = None
          ) -> tuple[float, float]:
    """Wall and CPU seconds from start to exit of one command run in `folder` (with `env`, or
    this process's environment), which must succeed."""
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, check=False)
    elapsed, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr}")
    return elapsed, cpu
