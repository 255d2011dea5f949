"""The chaos suite's own stack: a Kafka broker, PostgreSQL and the five services, each killable alone.

Nothing here touches the shared development stack: the broker and database run from a directory of
their own (`.local/chaos/<run>/`, via deploy/local/stack.py and STREETNEEDS_LOCAL_DIR) on free ports.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
# The e-mail notifier joins the run where this checkout has it (it is newer than the others).
NOTIFIER = importlib.util.find_spec("services.notifier") is not None
SERVICES = ("ingest", "aggregator", "prompter", "feeds", "partners") + (("notifier",) if NOTIFIER else ())
NOTIFIER_WORKERS = 2


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(pair: bool = False) -> int:
    """A free loopback port (and the one after it, for Kafka's controller, when `pair`), below the
    ephemeral range: a port the kernel hands out for outgoing connections can be taken again before a
    server restarted on it binds."""
    while True:
        port = random.randrange(12000, 19000)
        if _bindable(port) and (not pair or _bindable(port + 1)):
            return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@dataclass
class Stack:
    """Kafka and PostgreSQL of the suite's own, started and stopped through deploy/local/stack.py."""

    home: Path
    kafka_port: int = field(default_factory=lambda: free_port(pair=True))
    pg_port: int = field(default_factory=free_port)

    @classmethod
    def create(cls) -> Stack:
        home = ROOT / ".local" / "chaos" / uuid.uuid4().hex[:8]
        home.mkdir(parents=True)
        return cls(home)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://streetneeds@127.0.0.1:{self.pg_port}/streetneeds"

    def env(self) -> dict[str, str]:
        """What every process run against this stack gets (never the shared stack's servers)."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "LOG_LEVEL": "WARNING",
        }

    def _stack(self, command: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        env |= {
            "STREETNEEDS_LOCAL_DIR": str(self.home),
            "STREETNEEDS_KAFKA_PORT": str(self.kafka_port),
            "STREETNEEDS_PG_PORT": str(self.pg_port),
        }
        subprocess.run(
            [PY, str(ROOT / "deploy/local/stack.py"), command],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def up(self) -> None:
        self._stack("up")

    def down(self) -> None:
        self._stack("down")

    def remove(self) -> None:
        pg = self.home / "postgres"
        if pg.is_symlink():  # its data was kept where PostgreSQL's user can reach it (stack.py)
            shutil.rmtree(pg.resolve(), ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def kill_kafka(self) -> None:
        """SIGKILL the broker: no controlled shutdown, it recovers its logs when it starts again."""
        pid = int((self.home / "kafka" / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)

    def crash_postgres(self) -> None:
        """SIGQUIT the postmaster (pg_ctl's `immediate` mode): every connection dropped, crash recovery
        on the next start."""
        pid = int((self.home / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        while _alive(pid):
            time.sleep(0.1)

    def run_cli(self, *args: str, env: dict[str, str] | None = None) -> None:
        subprocess.run(
            [PY, "-m", "services.cli", *args],
            cwd=ROOT,
            env=env or self.env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def setup(self) -> None:
        """What `make setup` does, against this stack: topics, migrations, the Camden gazetteer."""
        self.run_cli("topics", "create")
        self.run_cli("migrate")
        self.run_cli(
            "gazetteer",
            "import",
            "data/camden/camden.osm.pbf",
            "--wards",
            "data/camden/wards-2022.geojson",
            "--lsoas",
            "data/camden/lsoa-2021.geojson",
            "--boundary",
            "data/camden/boundary.geojson",
        )


@dataclass
class Service:
    """One service as a real process (`python -m services.<name>`), logging to the run directory."""

    name: str
    env: dict[str, str] = field(repr=False)  # holds the run's secrets
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    kills: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes of exits nobody asked for

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [PY, "-m", f"services.{self.name}"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def supervise(self) -> bool:
        """Restart the process if it exited by itself (what Kubernetes or systemd would do)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append(self.proc.returncode)
            self.start()
            return True
        return False

    async def ready(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                self.supervise()
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"{self.name} not ready within {within:.0f}s; see {self.log}")


def service_env(stack: Stack, name: str, port: int, smtp_port: int = 0) -> dict[str, str]:
    """Each service's settings: its own port, strong secrets, fast timers so a run is short."""
    base = stack.env()
    own = {
        "ingest": {
            "INGEST_PORT": str(port),
            "INGEST_PSEUDONYM_KEYS": f"1:{secrets.token_urlsafe(40)}",
            "INGEST_PSEUDONYM_KEY_VERSION": "1",
        },
        "aggregator": {
            "AGGREGATOR_PORT": str(port),
            "AGGREGATOR_OPERATOR_TOKEN": secrets.token_urlsafe(32),
            "AGGREGATOR_REFRESH_INTERVAL_SECONDS": "5",
        },
        "prompter": {"PROMPTER_PORT": str(port), "PROMPTER_ADMIN_TOKEN": secrets.token_urlsafe(32)},
        "feeds": {
            "FEEDS_PORT": str(port),
            "FEEDS_BASE_URL": f"http://127.0.0.1:{port}",
            "FEEDS_SSE_HEARTBEAT_S": "1",
        },
        "partners": {
            "PARTNERS_PORT": str(port),
            "PARTNERS_WEBHOOK_ALLOW_LOOPBACK": "true",
            "PARTNERS_WEBHOOK_BACKOFF_BASE_S": "1",
            "PARTNERS_WEBHOOK_BACKOFF_CAP_S": "5",
            "PARTNERS_WEBHOOK_POLL_INTERVAL_S": "0.5",
            # Half the default batch keeps a killed worker's lease (delivery.lease_s: two batches in
            # flight, in turns of the partner's concurrency) at 65 s, well inside the recovery wait.
            "PARTNERS_WEBHOOK_BATCH_SIZE": "25",
        },
        "notifier": {
            "NOTIFIER_PORT": str(port),
            "NOTIFIER_LINK_SECRET": secrets.token_urlsafe(32),
            "NOTIFIER_SMTP_PORT": str(smtp_port),
            "NOTIFIER_SENDER_WORKERS": str(NOTIFIER_WORKERS),
            # Mail a killed sender had claimed comes back soon (the lease must outlast one SMTP timeout).
            "NOTIFIER_SMTP_TIMEOUT_S": "10",
            "NOTIFIER_LEASE_S": "15",
        },
    }[name]
    return base | own


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


# `streetneeds simulate`, with the simulator's reference data found in this checkout: since the move to
# simulator/ its CAMDEN_DIR points one directory too high (reported; remove this once fixed).
_SIMULATE = (
    "import sys; from pathlib import Path; import simulator.cli as c; "
    "c.REFERENCE_DIRS['camden'] = Path('data/camden').resolve(); "
    "from services.cli import main; sys.argv[0] = 'streetneeds'; main()"
)


@dataclass
class Simulator:
    """`streetneeds simulate` as a council would run it: paced, to ingest's HTTP API or its topic.
    Restarted with the same seed if it fails (e.g. no broker to bootstrap from): the same signals
    and ids again, which ingest must de-duplicate."""

    stack: Stack
    sink: str
    ingest_url: str
    api_key: str
    rate: float
    count: int
    seed: int
    proc: subprocess.Popen | None = None
    restarts: int = 0

    def start(self) -> None:
        with (self.stack.home / f"simulate-{self.sink}.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [PY, "-c", _SIMULATE, "simulate", "--sink", self.sink, "--url", self.ingest_url,
                 "--rate", f"{self.rate:.2f}", "--count", str(self.count), "--seed", str(self.seed),
                 # A council system retries through a restart: one that gave up could be told a
                 # signal failed that ingest had already produced (the documented gap, pipeline.py).
                 "--retry-for", "600"],
                cwd=ROOT,
                env={**self.stack.env(), "COUNCIL_API_KEY": self.api_key},
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def supervise(self) -> bool:
        """True while it runs; restarts it after a failure; False once it has finished its run."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return True
        if code != 0:
            self.restarts += 1
            self.start()
            return True
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
