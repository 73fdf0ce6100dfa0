"""Run every benchmark script of this directory in ``--quick`` mode (``make bench``).

Each script runs in its own interpreter from the repository root, so charts land
in ``out/bench/``; its output streams through. The exit status is 1 if any
script failed, and the failures are listed at the end.

    python benchmarks/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def scripts() -> list[Path]:
    """The benchmark scripts: every ``*.py`` here but this one and private ``_*.py`` helpers."""
    return sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def run(script: Path) -> tuple[int, float]:
    """Run one script with ``--quick``; its exit status and wall-clock seconds."""
    print(f"=== {script.relative_to(ROOT)} --quick", flush=True)
    start = time.perf_counter()
    status = subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT).returncode
    return status, time.perf_counter() - start


def main() -> int:
    failed = []
    for script in scripts():
        status, seconds = run(script)
        print(f"=== {script.name}: {'ok' if status == 0 else f'exit status {status}'} in {seconds:.1f} s\n", flush=True)
        if status != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
