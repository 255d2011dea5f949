"""Local development stack without Docker: Apache Kafka (KRaft) from Maven Central and PostgreSQL.

    python deploy/local/stack.py up      # fetch (once), format (once), start; write .local/stack.env
    python deploy/local/stack.py down    # stop both
    python deploy/local/stack.py status

Everything lives in the git-ignored `.local/`. If `KAFKA_BOOTSTRAP_SERVERS` or `DATABASE_URL` is
already set, that server is used as it is and nothing is started for it. Standard library only, so it
runs before the project is installed.
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
# STREETNEEDS_LOCAL_DIR: a second, independent stack elsewhere (the chaos suite's, on its own ports).
LOCAL = Path(os.environ.get("STREETNEEDS_LOCAL_DIR") or ROOT / ".local")
KAFKA_DIR = LOCAL / "kafka"
# Kafka's jars are fetched once per checkout, whichever stack uses them.
KAFKA_LIBS = ROOT / ".local" / "kafka" / "libs"
PG_DIR = LOCAL / "postgres"
ENV_FILE = LOCAL / "stack.env"
KAFKA_PORT = int(os.environ.get("STREETNEEDS_KAFKA_PORT", "19092"))
PG_PORT = int(os.environ.get("STREETNEEDS_PG_PORT", "54329"))
# How often autovacuum looks at each database (PostgreSQL's default: 1 min). A fresh database has no
# planner statistics until autovacuum first analyses it: under a burst on new tables (the demo, the
# benches, a new deployment's first minute) lookups were planned as whole-table scans and the live path
# fell seconds behind for that minute. Looking every 10 s bounds that to seconds; the tables analysed
# are small and it costs nothing when idle.
AUTOVACUUM_NAPTIME = "10s"
# Write-ahead log: every signal that moves a street's count writes ~20 KB of WAL on the live path (a
# prompt revision stored by the aggregator, prompter, feeds, notifier and partners, each in its own
# schema). At 1,000 signals/s, PostgreSQL's default 1 GB filled in under a minute: a checkpoint
# every ~50 s, each followed by full-page images of every page touched again. Checkpoints at most
# every 15 min (or 8 GB), and page images compressed, cut the WAL written per signal.
# New WAL files are not filled with zeros first (`wal_init_zero=off`): until its first checkpoints a
# cluster has no old files to recycle, and at ~17 MB/s of WAL under that load a committing backend
# wrote 16 MB of zeros and synced them about once a second, holding the WAL write lock while every
# other commit waited (3-4% of PostgreSQL's active samples in that write, 6-9% waiting for the lock;
# with zeros skipped, 1-3% waiting for the lock). What zeros buy is space reserved in advance: a full
# disk then fails a file's creation rather than a later write, which stops PostgreSQL either way.
WAL_SETTINGS = "-c max_wal_size=8GB -c checkpoint_timeout=15min -c wal_compression=lz4 -c wal_init_zero=off"
# Values over ~2 KB (a prompt revision's JSON with its row, now and then) are compressed when stored:
# with lz4 rather than PostgreSQL's default pglz, whose compression was ~5% of a core under the
# live probe's load (`perf`); lz4 is several times cheaper for about the same ratio on JSON.
TOAST_SETTINGS = "-c default_toast_compression=lz4"
DB_NAME = DB_USER = "streetneeds"


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(port: int, what: str, timeout: float, proc_alive) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if not proc_alive():
            sys.exit(f"[stack] {what} exited during start-up; see its log in {LOCAL}")
        time.sleep(0.3)
    sys.exit(f"[stack] {what} did not listen on port {port} within {timeout:.0f}s")


def pid_alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text()), 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return False


# --- Kafka -------------------------------------------------------------------------------------


def apt_install(*packages: str) -> bool:
    """Install Debian packages when we may (root with apt-get), as a fresh CI machine needs."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    log(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return True


def kafka_fetch() -> Path:
    libs = KAFKA_LIBS
    stamp = libs / ".pom.sha"
    pom = ROOT / "deploy/kafka/pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()  # refetch only when the pom changes
    if stamp.exists() and stamp.read_text() == digest and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if not shutil.which("mvn") and not apt_install("maven"):
        sys.exit("[stack] Maven (mvn) is needed to fetch Kafka from Maven Central: apt-get install maven")
    log("fetching Apache Kafka and its runtime dependencies from Maven Central (first run only)")
    shutil.rmtree(libs, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    stamp.write_text(digest)
    return libs


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    exe = str(Path(home) / "bin/java") if home else shutil.which("java")
    if not exe and apt_install("openjdk-17-jre-headless"):
        exe = shutil.which("java")
    if not exe:
        sys.exit("[stack] Java 17+ is needed for Kafka: apt-get install openjdk-17-jre-headless")
    return exe


def kafka_up() -> str:
    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    pidfile = KAFKA_DIR / "kafka.pid"
    if port_open(KAFKA_PORT):
        log(f"Kafka already listening on {bootstrap}")
        return bootstrap
    libs = kafka_fetch()
    data, logs = KAFKA_DIR / "data", KAFKA_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    props = KAFKA_DIR / "server.properties"
    props.write_text(
        Template((ROOT / "deploy/kafka/server.properties").read_text()).substitute(
            port=KAFKA_PORT, controller_port=KAFKA_PORT + 1, data_dir=data
        )
    )
    cp = f"{libs}/*"
    if not (data / "meta.properties").exists():
        # A KRaft cluster id is 16 random bytes, URL-safe base64 without padding; like Kafka's own
        # generator, avoid a leading '-', which the tool would read as an option.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        log("formatting Kafka storage (KRaft)")
        subprocess.run(
            [java(), "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log(f"starting Kafka on {bootstrap}")
    with open(logs / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            [
                java(),
                "-Xms256m",
                "-Xmx768m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={logs}",
                f"-Dlog4j2.configurationFile={ROOT / 'deploy/kafka/log4j2.properties'}",
                "-cp",
                cp,
                "kafka.Kafka",
                str(props),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(str(proc.pid))
    wait_for(KAFKA_PORT, "Kafka", 90, lambda: proc.poll() is None)
    return bootstrap


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if versions:
        return Path(versions[-1]).parent
    # The embedded fallback: PyPI's pgserver ships PostgreSQL's binaries in its wheel.
    try:
        import pgserver  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        log("no PostgreSQL binaries on this machine: installing the pgserver wheel")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pgserver"], check=True)
    from pgserver._commands import POSTGRES_BIN_PATH  # type: ignore[import-not-found]

    return Path(POSTGRES_BIN_PATH)


def as_pg_user() -> list[str]:
    """PostgreSQL refuses to run as root: run it as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "streetneeds"):
        try:
            pwd.getpwnam(name)
            break
        except KeyError:
            continue
    else:
        subprocess.run(["useradd", "--system", "--no-create-home", "streetneeds"], check=True)
        name = "streetneeds"
    place_pg_dir(name, PG_DIR)
    return ["runuser", "-u", name, "--"]


def _closed_to(user: str, directory: Path) -> Path | None:
    """The first directory on the way to `directory` that `user` may not enter, if any."""
    for parent in reversed(directory.resolve().parents):
        if subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(parent)]).returncode != 0:
            return parent
    return None


def place_pg_dir(user: str, pg_dir: Path) -> None:
    """Make `pg_dir` a directory `user` (PostgreSQL's, when we are root) owns and can reach.

    A clone under a directory only its owner may enter (root's home, `mktemp -d`) is out of that
    user's reach, and initdb failed deep inside. Its data then lives in the system's temporary
    directory, under a name drawn from the clone's path, and `pg_dir` links there (PostgreSQL is
    given the resolved path). Data already in an unreachable `pg_dir` is never moved: that stops
    with a message instead."""
    if pg_dir.is_symlink():
        pg_dir.resolve().mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.chown(pg_dir.resolve(), user)
        return
    pg_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(pg_dir, user)
    closed = _closed_to(user, pg_dir)
    if closed is None:
        return
    way_out = (
        f"PostgreSQL runs as the user {user!r}, who cannot enter {closed} (mode"
        f" {closed.stat().st_mode & 0o777:o}), so it cannot reach its data in {pg_dir}. Clone the"
        f" repository under a directory others may enter, let them through (chmod o+x {closed}), or"
        " point DATABASE_URL at a PostgreSQL of your own."
    )
    if any(pg_dir.iterdir()):
        sys.exit(f"[stack] {way_out}")
    digest = hashlib.sha256(str(pg_dir.resolve()).encode()).hexdigest()[:12]
    elsewhere = Path(tempfile.gettempdir()) / f"streetneeds-postgres-{digest}"
    elsewhere.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(elsewhere, user)
    if _closed_to(user, elsewhere) is not None:
        sys.exit(f"[stack] {way_out}")
    pg_dir.rmdir()
    pg_dir.symlink_to(elsewhere, target_is_directory=True)
    log(f"PostgreSQL's user {user!r} cannot enter {closed}: its data is in {elsewhere}, linked from {pg_dir}")


def pg_up() -> str:
    url = f"postgresql://{DB_USER}@127.0.0.1:{PG_PORT}/{DB_NAME}"
    if port_open(PG_PORT):
        log(f"PostgreSQL already listening on port {PG_PORT}")
        return url
    bindir, sudo = pg_bindir(), as_pg_user()
    pg_dir = PG_DIR.resolve()  # where the data lives (a link elsewhere when root's user can't reach it)
    data = pg_dir / "data"
    if not (data / "PG_VERSION").exists():
        log(f"initialising PostgreSQL ({bindir})")
        subprocess.run(
            [
                *sudo,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                DB_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                # Text compares byte by byte: the same order as glibc's C.UTF-8 (code points), but
                # PostgreSQL takes its fast path only for "C" (memcmp and abbreviated sort keys,
                # not strcoll on copied strings): ~8% less backend CPU on the aggregator's fold.
                "--lc-collate=C",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log(f"starting PostgreSQL on 127.0.0.1:{PG_PORT}")
    subprocess.run(
        [
            *sudo,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(pg_dir / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {PG_PORT} -c listen_addresses=127.0.0.1 -k {pg_dir} -c max_connections=300"
            f" -c fsync=on -c shared_buffers=256MB -c autovacuum_naptime={AUTOVACUUM_NAPTIME}"
            f" {WAL_SETTINGS} {TOAST_SETTINGS}",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    exists = subprocess.run(
        [
            *sudo,
            str(bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(PG_PORT),
            "-U",
            DB_USER,
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(
            [*sudo, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", DB_USER, DB_NAME],
            check=True,
        )
    return url


def pg_down() -> None:
    data = PG_DIR.resolve() / "data"
    if (data / "postmaster.pid").exists():
        log("stopping PostgreSQL")
        subprocess.run(
            [*as_pg_user(), str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )


def kafka_down() -> None:
    pidfile = KAFKA_DIR / "kafka.pid"
    if not pid_alive(pidfile):
        return
    pid = int(pidfile.read_text())
    log("stopping Kafka")
    os.kill(pid, signal.SIGTERM)  # controlled shutdown: the broker flushes and closes its logs
    for _ in range(150):
        if not pid_alive(pidfile):
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def up() -> None:
    LOCAL.mkdir(exist_ok=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or kafka_up()
    database = os.environ.get("DATABASE_URL") or pg_up()
    ENV_FILE.write_text(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nDATABASE_URL={database}\n")
    log(f"ready: KAFKA_BOOTSTRAP_SERVERS={bootstrap} DATABASE_URL={database}")


def down() -> None:
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka_down()
    if not os.environ.get("DATABASE_URL"):
        pg_down()


def status() -> None:
    print(f"kafka  127.0.0.1:{KAFKA_PORT}  {'up' if port_open(KAFKA_PORT) else 'down'}")
    print(f"postgres 127.0.0.1:{PG_PORT}  {'up' if port_open(PG_PORT) else 'down'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    {"up": up, "down": down, "status": status}[parser.parse_args().command]()
