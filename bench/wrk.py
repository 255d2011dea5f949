"""Debian's `wrk` as the benches' HTTP load generator (not a Python client), with the server's CPU.

`run` drives one URL for a fixed time and reads back what wrk printed, plus the server process's CPU
and how busy the whole machine was meanwhile (load generator, server, Kafka and PostgreSQL share the
cores). A Lua `script` makes each request differ (bodies with fresh ids, for a POST endpoint).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

__all__ = ["SETTINGS", "TICKS", "cpu_s", "machine_busy_s", "parse", "run"]

SETTINGS = ("-t2", "-c64", "-d10s")  # the performance issue's: 2 threads, 64 connections, 10 s
TICKS = os.sysconf("SC_CLK_TCK")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat), to show contention."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / TICKS, sum(ticks) / TICKS


def parse(out: str) -> dict:
    """What wrk printed (`--latency`): requests/s, requests, p50/p99/max in ms, non-2xx/3xx answers."""
    lat = {
        q: float(v) * _UNITS[u]
        for q, v, u in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    }
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": lat.get("50", float("nan")),
        "p99": lat.get("99", float("nan")),
        "max": float(m.group(3)) * _UNITS[m.group(4)] if m else float("nan"),
        "bad": int(errors.group(1)) if errors else 0,
    }


def run(
    url: str,
    pid: int,
    headers: dict[str, str] | None = None,
    *,
    script: Path | None = None,
    settings: tuple[str, ...] = SETTINGS,
) -> dict:
    """One wrk run against `url`: requests/s, latency p50/p99/max (ms), requests answered outside
    2xx/3xx, and the server process's CPU per request and in cores over the run."""
    args = ["wrk", *settings, "--latency"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    if script is not None:
        args += ["-s", str(script)]
    cpu0, busy0 = cpu_s(pid), machine_busy_s()
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=120, check=True).stdout
    cpu, busy = cpu_s(pid) - cpu0, machine_busy_s()
    seconds = float(next(a for a in settings if a.startswith("-d")).removeprefix("-d").removesuffix("s"))
    result = parse(out)
    return {
        **result,
        "cpu_ms_per_request": 1000 * cpu / max(result["requests"], 1),
        "server_cores": cpu / seconds,
        "machine_busy": (busy[0] - busy0[0]) / max(busy[1] - busy0[1], 1e-9),
    }
