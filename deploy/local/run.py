"""`make run`: start every service as its own process, wait until each is ready, load demo signals.

Prints where to look, then waits; Ctrl-C (or `make stop`, which calls `run.py --stop`) stops the
services cleanly (SIGTERM: each stops consuming, commits what it processed and closes its pool).
Runs with the project's virtualenv after `make setup` (stack, topics, migrations, gazetteer).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
RUN_DIR = LOCAL / "run"
SECRETS = LOCAL / "secrets.env"
DEMO_KEYS = LOCAL / "demo-keys.env"
PY = sys.executable

sys.path.insert(0, str(ROOT))
from shared.registry import SERVICES as REGISTRY  # noqa: E402  (run.py runs as a script)
from shared.registry import by_name  # noqa: E402

# name, port, what a person finds there
SERVICES = tuple((s.name, s.port, s.hint) for s in REGISTRY)


def load_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def local_secrets() -> dict[str, str]:
    """Development secrets, generated once into the git-ignored .local/secrets.env."""
    wanted = {
        "INGEST_PSEUDONYM_KEYS": lambda: f"1:{secrets.token_urlsafe(48)}",
        "INGEST_PSEUDONYM_KEY_VERSION": lambda: "1",
        "AGGREGATOR_OPERATOR_TOKEN": lambda: secrets.token_urlsafe(32),
        "PROMPTER_ADMIN_TOKEN": lambda: secrets.token_urlsafe(32),
        "INGEST_OPERATOR_TOKEN": lambda: secrets.token_urlsafe(32),
        "PARTNERS_OPERATOR_TOKEN": lambda: secrets.token_urlsafe(32),
        "NOTIFIER_LINK_SECRET": lambda: secrets.token_urlsafe(48),
        "NOTIFIER_WEBHOOK_TOKEN": lambda: secrets.token_urlsafe(32),
    }
    have = load_env(SECRETS)
    missing = {k: make() for k, make in wanted.items() if k not in have}
    if missing:
        with SECRETS.open("a") as f:
            f.writelines(f"{k}={v}\n" for k, v in missing.items())
        SECRETS.chmod(0o600)
    return {**have, **missing}


# The demo loads last month's signals at start: check for the monthly release every half
# minute rather than hourly, so its prompts appear while you watch.
DEMO_SETTINGS = {"AGGREGATOR_RELEASE_CHECK_INTERVAL_SECONDS": "30"}


def role_urls(admin_url: str) -> dict[str, str]:
    """Each service's own PostgreSQL role (`streetneeds migrate` grants it its schema), generated once."""
    parts = urllib.parse.urlsplit(admin_url)
    host = parts.netloc.rpartition("@")[2]
    wanted = {
        f"{s.name.upper()}_DATABASE_URL": lambda s=s: urllib.parse.urlunsplit(
            parts._replace(netloc=f"streetneeds_{s.name}:{secrets.token_urlsafe(24)}@{host}")
        )
        for s in REGISTRY
    }
    have = load_env(SECRETS)
    missing = {k: make() for k, make in wanted.items() if k not in have}
    if missing:
        with SECRETS.open("a") as f:
            f.writelines(f"{k}={v}\n" for k, v in missing.items())
        SECRETS.chmod(0o600)
    return {k: {**have, **missing}[k] for k in wanted}


def own_env(env: dict[str, str], name: str) -> dict[str, str]:
    """Least privilege: a service gets its own settings, secrets and database role, none of the others'."""
    others = tuple(f"{s.name.upper()}_" for s in REGISTRY if s.name != name)
    demo = set(load_env(DEMO_KEYS))  # the demo's council and partner keys belong to the simulator
    mine = {k: v for k, v in env.items() if not k.startswith(others) and k not in demo}
    own_url = env.get(f"{name.upper()}_DATABASE_URL")
    if own_url:
        mine["DATABASE_URL"] = own_url  # not even the administrator's URL
    return mine


def grant_roles(env: dict[str, str]) -> None:
    subprocess.run(
        [PY, "-m", "services.cli", "migrate"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )


def service_env() -> dict[str, str]:
    found = local_secrets()
    # The console calls each service with that service's own operator token.
    console = {
        "CONSOLE_INGEST_TOKEN": found["INGEST_OPERATOR_TOKEN"],
        "CONSOLE_AGGREGATOR_TOKEN": found["AGGREGATOR_OPERATOR_TOKEN"],
        "CONSOLE_PROMPTER_TOKEN": found["PROMPTER_ADMIN_TOKEN"],
        "CONSOLE_PARTNERS_TOKEN": found["PARTNERS_OPERATOR_TOKEN"],
    }
    stack = load_env(LOCAL / "stack.env")
    roles = role_urls(stack.get("DATABASE_URL") or os.environ["DATABASE_URL"])
    return {**DEMO_SETTINGS, **os.environ, **stack, **found, **console, **roles}


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


# Every process here shares this machine's cores with Kafka and PostgreSQL. The background ones
# (mail, webhooks, the console, the mail sink, the demo's simulator) run at a lower CPU priority, so
# that under load a council's signal reaches the resident's feed first and they catch up in the
# slack. Measured with `python -m bench.probe_live` under 1,000 signals/s on a 2-core machine, five
# pairs of runs alternated on running stacks: each pair's loaded p50 and p99 lower at the lower
# priority (p50 62-98 ms against 94-160, p99 295-862 ms against 475-1,057); the background services'
# backlog stayed under 2.6k records (~2.5 s) and was gone within 8 s of the load's end.
BACKGROUND_NICE = 10


def _background() -> None:
    os.nice(BACKGROUND_NICE)


def start(env: dict[str, str]) -> list[tuple[str, int, subprocess.Popen]]:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, port, _ in SERVICES:
        log = (RUN_DIR / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [PY, "-m", by_name(name).module],
            cwd=ROOT,
            env=own_env(env, name),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_background if by_name(name).background else None,
        )
        (RUN_DIR / f"{name}.pid").write_text(str(proc.pid))
        procs.append((name, port, proc))
    return procs


def start_mail_sink(env: dict[str, str]) -> subprocess.Popen:
    """The local SMTP sink the notifier sends to by default: mail lands in .local/mail/, readable at :8025."""
    proc = subprocess.Popen(
        [PY, "-m", "services.notifier.sink", "--maildir", str(LOCAL / "mail"), "--smtp-port", "1025"],
        cwd=ROOT,
        env=env,
        stdout=(RUN_DIR / "mail-sink.log").open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=_background,
    )
    (RUN_DIR / "mail-sink.pid").write_text(str(proc.pid))
    return proc


DEMO_SYSTEM = "Demo council system"


def forget_stale_demo_keys(env: dict[str, str]) -> None:
    """Demo keys only work in the database they were made in. When that database no longer has the
    demo council system active (its data was deleted while .local/ stayed, or DATABASE_URL now points
    at another), every demo key is made afresh; kept, the simulator would be refused (401) forever."""
    if "COUNCIL_API_KEY" not in load_env(DEMO_KEYS):
        return
    listed = subprocess.run(
        [PY, "-m", "services.cli", "ingest", "list-systems"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    if not any(DEMO_SYSTEM in line and "active" in line.split() for line in listed):
        print(f"  {DEMO_KEYS.relative_to(ROOT)}: unknown to this database, making new demo keys", flush=True)
        DEMO_KEYS.unlink()


def demo_keys(env: dict[str, str]) -> dict[str, str]:
    """A demo council system and a demo VCS partner, created once; keys kept in .local/demo-keys.env."""
    forget_stale_demo_keys(env)
    keys = load_env(DEMO_KEYS)
    if "COUNCIL_API_KEY" not in keys:
        subprocess.run(
            [
                PY,
                "-m",
                "services.cli",
                "ingest",
                "create-system",
                DEMO_SYSTEM,
                "--council",
                "camden",
                "--key-file",
                str(DEMO_KEYS),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if "PARTNER_API_KEY" not in load_env(DEMO_KEYS):
        subprocess.run(
            [
                PY,
                "-m",
                "services.cli",
                "partners",
                "create-partner",
                "Demo VCS partner",
                "--key-file",
                str(DEMO_KEYS),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if "CONSOLE_PASSWORD" not in load_env(DEMO_KEYS):
        subprocess.run(
            [
                PY,
                "-m",
                "services.cli",
                "console",
                "create-operator",
                "demo-admin",
                "--role",
                "admin",
                "--key-file",
                str(DEMO_KEYS),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return load_env(DEMO_KEYS)


# Two demo organisations (issue 13): the demo VCS partner as a voluntary group (its PARTNER_API_KEY is
# also its organisation key, so one key works on both services) and the council's community team.
DEMO_ORGANISATIONS = (
    ("ORG_API_KEY", "Kentish Town Neighbours (demo)", ["--kind", "vcs", "--key-from-env", "PARTNER_API_KEY"]),
    ("COUNCIL_ORG_API_KEY", "Camden community team (demo)", ["--kind", "council", "--council-admin"]),
)


def _around(lat: float, lon: float, radius_m: float) -> dict:
    return {"point": {"lat": lat, "lon": lon}, "radius_m": radius_m}


DEMO_OPPORTUNITIES = {
    "ORG_API_KEY": [
        {
            "title": "Tea and a chat at the Tuesday lunch club",
            "what": "Pour tea, serve lunch and sit with older neighbours who come on their own.",
            "contact_email": "lunchclub@example.org",
            "categories": ["isolation"],
            "area": _around(51.5507, -0.1406, 1500),
            "times": "Tuesdays 12 to 2pm",
            "time_needed": "Two hours a week",
            "dbs_needed": False,
        },
        {
            "title": "Homework club helpers at Queen's Crescent",
            "what": "Help children aged 7 to 11 with reading and homework in a quiet room.",
            "url": "https://example.org/homework-club",
            "categories": ["overcrowding"],
            "area": _around(51.5497, -0.1533, 1500),
            "times": "Mondays and Thursdays 4 to 5:30pm",
            "time_needed": "90 minutes a week",
            "dbs_needed": True,
        },
        {
            "title": "Saturday litter pick",
            "what": "Pick litter with neighbours for an hour; gloves, bags and pickers provided.",
            "contact_phone": "020 7946 0123",
            "categories": ["litter", "fly_tipping", "dumped_rubbish"],
            "area": _around(51.5450, -0.1420, 2000),
            "times": "First Saturday of the month, 10am",
            "time_needed": "One hour",
        },
    ],
    "COUNCIL_ORG_API_KEY": [
        {
            "title": "Befriending phone calls",
            "what": "Ring an older resident once a week for a friendly chat; training given.",
            "contact_email": "befriending@example.org",
            "categories": ["isolation"],
            "area": _around(51.5450, -0.1600, 5000),
            "time_needed": "30 minutes a week",
            "dbs_needed": True,
        },
        {
            "title": "Street greening volunteers",
            "what": "Plant and look after tree pits and small green corners on your street.",
            "url": "https://example.org/street-greening",
            "categories": ["overgrown_vegetation", "hard_to_manage_space"],
            "area": _around(51.5450, -0.1600, 5000),
            "times": "Weekends, when it suits you",
        },
    ],
}


def demo_organisations(env: dict[str, str], keys: dict[str, str]) -> dict[str, str]:
    """The demo organisations, created once (after demo_keys); their keys kept in .local/demo-keys.env."""
    for key_name, name, options in DEMO_ORGANISATIONS:
        if key_name not in load_env(DEMO_KEYS):
            command = ["services.cli", "prompter", "create-organisation", name, *options]
            subprocess.run(
                [PY, "-m", *command, "--key-file", str(DEMO_KEYS), "--key-name", key_name],
                cwd=ROOT,
                env={**env, **keys},
                check=True,
                stdout=subprocess.DEVNULL,
            )
    return load_env(DEMO_KEYS)


def demo_opportunities(keys: dict[str, str]) -> None:
    """Register the demo ways to help through the prompter's API (once), then say how to sign in."""
    base = f"http://127.0.0.1:{by_name('prompter').port}"

    def call(method: str, path: str, key: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    try:
        for key_name, opportunities in DEMO_OPPORTUNITIES.items():
            key = keys.get(key_name)
            if key and not call("GET", "/v1/organisation/opportunities", key)["opportunities"]:
                for body in opportunities:
                    call("POST", "/v1/opportunities", key, body)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"  demo opportunities not registered ({exc}); see {RUN_DIR / 'prompter.log'}")
        return
    print(f"\n  organisations: {base}/organisations — sign in with ORG_API_KEY (a voluntary group, the")
    print("    same key as PARTNER_API_KEY) or COUNCIL_ORG_API_KEY (the council's team: every change,")
    print("    the platforms directory)")
    print(f"  impact: {base}/impact")


def stop_all(procs=None) -> None:
    pids = (
        [p.pid for _, _, p in procs]
        if procs
        else [int(f.read_text()) for f in RUN_DIR.glob("*.pid") if f.read_text().strip().isdigit()]
    )
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if procs:
                for _, _, p in procs:
                    p.poll()  # reap children so they do not linger as zombies
            time.sleep(0.2)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for f in RUN_DIR.glob("*.pid"):
        f.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop services started earlier")
    parser.add_argument("--no-demo", action="store_true", help="do not load demo signals")
    args = parser.parse_args()
    if args.stop:
        stop_all()
        return
    env = service_env()
    keys = demo_organisations(env, demo_keys(env))
    env.update(keys)
    grant_roles(env)
    procs = start(env)
    mail_sink = start_mail_sink(env)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    started = time.monotonic()
    try:
        print("\nstreetneeds is starting…", flush=True)
        for name, port, proc in procs:
            ok = wait_ready(port, proc)
            state = "ready" if ok else f"NOT READY (see {RUN_DIR / (name + '.log')})"
            print(f"  {name:<11} http://127.0.0.1:{port:<5} {state}", flush=True)
        print(f"  all services up in {time.monotonic() - started:.1f}s\n")
        for name, port, hint in SERVICES:
            print(f"  {name:<11} {hint} → http://127.0.0.1:{port}")
        print(f"  {'mail':<11} .local/mail/ and http://127.0.0.1:8025 (every mail sent on this machine)")
        procs.append(("mail-sink", 8025, mail_sink))
        print(f"\n  demo keys ({DEMO_KEYS.relative_to(ROOT)}):")
        for k, v in keys.items():
            print(f"    {k}={v}")
        if "CONSOLE_PASSWORD" in keys:
            console = f"http://127.0.0.1:{by_name('console').port}/sign-in"
            print(f"\n  operators' console: {console} — sign in as {keys['CONSOLE_USERNAME']}")
            print(f"    password: {keys['CONSOLE_PASSWORD']}")
        demo_opportunities(keys)
        simulator = None
        if not args.no_demo:
            print("\n  loading demo signals (45 days of Camden) and then a live trickle…", flush=True)
            simulator = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "services.cli",
                    "simulate",
                    "--backfill-days",
                    "45",
                    "--rate",
                    "2",
                    "--duration",
                    "86400",
                    "--seed",
                    "7",
                ],
                cwd=ROOT,
                env=env,
                stdout=(RUN_DIR / "simulator.log").open("ab"),
                stderr=subprocess.STDOUT,
                preexec_fn=_background,
            )
            procs.append(("simulator", 0, simulator))
        print("\n  logs: .local/run/*.log — Ctrl-C (or `make stop`) stops everything.\n", flush=True)
        while all(p.poll() is None for name, _, p in procs if name != "simulator"):
            time.sleep(1)
        dead = [name for name, _, p in procs if p.poll() is not None and name != "simulator"]
        print(f"service exited: {', '.join(dead)} — see .local/run/", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    finally:
        stop_all(procs)
        print("stopped.")


if __name__ == "__main__":
    main()
