"""Run every bench module, tolerate failures (recorded as rows), write bench/RESULTS.md with the machine."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV_KEYS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")


def bench_env() -> dict[str, str]:
    """KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL from the environment, else from .local/stack.env."""
    env = {}
    stack = ROOT / ".local" / "stack.env"
    if stack.exists():
        for line in stack.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    env.update({k: os.environ[k] for k in ENV_KEYS if k in os.environ})
    return {k: env[k] for k in ENV_KEYS if k in env}


def _first(pattern: str, text: str, default: str = "unknown") -> str:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else default


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20).stderr
    except (OSError, subprocess.SubprocessError):
        java = ""
    jars = sorted((ROOT / ".local" / "kafka" / "libs").glob("kafka_*.jar"))
    kib = _first(r"^MemTotal:\s+(\d+)", meminfo, "0")
    return {
        "CPU": _first(r"^model name\s*:\s*(.+)$", cpuinfo, platform.processor() or "unknown"),
        "cores": str(os.cpu_count()),
        "RAM": f"{int(kib) / 1024 / 1024:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Java": _first(r'version "([^"]+)"', java),
        "Kafka": _first(r"kafka_[\d.]+-(.+)\.jar", jars[0].name) if jars else "unknown",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run_all(env: dict[str, str], only: list[str] | None = None) -> list[dict]:
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"bench.{name}")
            got = module.run(dict(env))
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            got = [{"benchmark": f"{name}: FAILED", "value": float("nan"), "unit": "",
                    "notes": f"{type(exc).__name__}: {exc}"[:300]}]
        for row in got:
            value = f"{row['value']:.4g} {row['unit']}"
            print(f"   {row['benchmark']}: {value}  {row.get('notes', '')}", flush=True)
        rows += [{"module": name, **r} for r in got]
        print(f"   ({time.monotonic() - started:.0f}s)", flush=True)
    return rows


def render(rows: list[dict], box: dict[str, str]) -> str:
    lines = ["# Benchmarks", "",
             "Written by `make bench` (`python -m bench`); loopback only, one machine.", "",
             "| machine | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in box.items()), "",
             "| module | benchmark | value | unit | notes |", "| --- | --- | ---: | --- | --- |"]
    for r in rows:
        notes = str(r.get("notes", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['module']} | {r['benchmark']} | {r['value']:,.4g} | {r['unit']} | {notes} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    rows = run_all(bench_env(), only=[a if a.startswith("bench_") else f"bench_{a}" for a in argv] or None)
    out = HERE / "RESULTS.md"
    out.write_text(render(rows, machine()))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
