"""Run every bench module, tolerate failures (recorded as rows), write bench/RESULTS.md with the machine."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import os
import platform
import re
import subprocess
import sys
import time
import traceback
import uuid
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
            got = [
                {
                    "benchmark": f"{name}: FAILED",
                    "value": float("nan"),
                    "unit": "",
                    "notes": f"{type(exc).__name__}: {exc}"[:300],
                }
            ]
        for row in got:
            value = f"{row['value']:.4g} {row['unit']}"
            print(f"   {row['benchmark']}: {value}  {row.get('notes', '')}", flush=True)
        rows += [{"module": name, **r} for r in got]
        print(f"   ({time.monotonic() - started:.0f}s)", flush=True)
    return rows


def _number(value: float) -> str:
    if value != value:  # NaN: the module failed
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render(rows: list[dict], box: dict[str, str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); loopback only, one machine.",
        "",
        "Load generators (wrk, the benches' clients), the services, Kafka and PostgreSQL share the "
        "machine's cores: rows give the server's CPU per request and how busy the whole machine was, "
        "and say which side was the bottleneck. Kafka's own ProducerPerformance/ConsumerPerformance "
        "(kafka-tools, the broker's version) on the same broker are the ceiling row; the aggregator is "
        "compared with them and with Quix Streams on the same events in the same run.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in box.items()),
        "",
        "| module | benchmark | value | unit | notes |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for r in rows:
        notes = str(r.get("notes", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['module']} | {r['benchmark']} | {_number(r['value'])} | {r['unit']} | {notes} |")
    return "\n".join(lines) + "\n"


def _previous_rows(path: Path) -> list[dict]:
    """Rows of RESULTS.md, so that running some modules keeps the others' figures."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 5 and cells[0].startswith("bench_"):
            value = cells[2].replace(",", "")
            rows.append(
                {
                    "module": cells[0],
                    "benchmark": cells[1],
                    "value": float(value) if value not in ("", "nan", "—") else float("nan"),
                    "unit": cells[3],
                    "notes": cells[4].replace("\\|", "|"),
                }
            )
    return rows


async def _topics(env: dict[str, str], create: bool) -> None:
    """Create (or delete) this run's topics, under the prefix set in main()."""
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka import ensure_topics
    from shared.settings import CommonSettings

    if create:
        await ensure_topics(
            CommonSettings(
                database_url=env["DATABASE_URL"], kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]
            )
        )
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    try:
        prefix = os.environ["STREETNEEDS_TOPIC_PREFIX"]
        await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(prefix)])
    finally:
        await admin.close()


README = ROOT / "README.md"
BENCH_START, BENCH_END = "<!-- BENCH:START (make bench) -->\n", "<!-- BENCH:END -->"


def write_readme(results: str) -> None:
    """Put the figures into the README's benchmark section."""
    text = README.read_text()
    if BENCH_START not in text:
        return
    head, _, rest = text.partition(BENCH_START)
    _, _, tail = rest.partition(BENCH_END)
    body = results.replace("# Benchmarks\n", "", 1).strip()
    README.write_text(f"{head}{BENCH_START}{body}\n{BENCH_END}{tail}")


def main(argv: list[str]) -> int:
    # Topics of the run's own: benchmarks never mix their load into a running demo (or vice versa)
    # and measure on empty topics, as on a new deployment. Services they start inherit the prefix.
    os.environ["STREETNEEDS_TOPIC_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}."
    env = bench_env()
    only = [a if a.startswith("bench_") else f"bench_{a}" for a in argv] or None
    asyncio.run(_topics(env, create=True))
    try:
        rows = run_all(env, only=only)
    finally:
        asyncio.run(_topics(env, create=False))
    out = HERE / "RESULTS.md"
    ran = {r["module"] for r in rows}
    kept = [r for r in _previous_rows(out) if r["module"] not in ran]
    out.write_text(render(sorted(kept + rows, key=lambda r: r["module"]), machine()))
    write_readme(out.read_text())
    print(f"wrote {out.relative_to(ROOT)} and the README's benchmark section")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
