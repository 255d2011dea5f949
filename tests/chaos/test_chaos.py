"""Chaos: under a simulator load, kill -9 every service at random moments, SIGKILL the broker and crash
PostgreSQL; afterwards nothing is lost, nothing counted twice, and repeats stay in their window.

The CI form is short (`make test`); `make chaos` runs the long form (CHAOS_SIGNALS=100000,
CHAOS_TRIALS=5). CHAOS_SEED replays a run's schedule. The windows checked are in docs/design/chaos.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import time
import uuid
from collections import Counter, defaultdict

import asyncpg
import httpx
import pytest

from services.aggregator.cli import rebuild_state
from services.aggregator.repository import snapshot
from services.aggregator.settings import AggregatorSettings
from services.aggregator.state import SignalState
from services.feeds import repository as feeds_repo
from services.ingest.anonymise import event_uuid
from shared.contracts import (
    COUNCIL_SIGNALS,
    DEAD_LETTERS,
    PROMPTS,
    SIGNALS_ANONYMISED,
    STREET_NEEDS,
    SignalAnonymised,
)
from shared.gazetteer import repository as gazetteer_repo
from shared.gazetteer.selection import Areas
from tests.chaos.harness import (
    NOTIFIER,
    NOTIFIER_WORKERS,
    SERVICES,
    Service,
    Simulator,
    Stack,
    free_port,
    read_env_file,
    service_env,
)
from tests.chaos.observers import (
    SseFollower,
    WebhookReceiver,
    end_offsets,
    group_lag,
    latest_by_key,
    read_topic,
)
from tests.support import loopback_socket, serve

if NOTIFIER:
    from services.notifier.sink import MailSink, messages

SIGNALS = int(os.environ.get("CHAOS_SIGNALS", "3000"))
TRIALS = int(os.environ.get("CHAOS_TRIALS", "1"))
SEED = int(os.environ.get("CHAOS_SEED") or random.randrange(10**6))
LONG = SIGNALS > 10_000 or TRIALS > 2
# A webhook delivery is in flight from its claim to the recorded attempt: at most the request timeout
# (PARTNERS_WEBHOOK_TIMEOUT_S, 5 s) plus the time to record it. Only a fault inside that span may
# repeat it (docs/design/chaos.md).
WEBHOOK_IN_FLIGHT_S = 5.0 + 5.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.chaos,
    pytest.mark.timeout(3 * 3600 if LONG else 600),
]


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def wait_until(what: str, check, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(1)
    raise AssertionError(f"not recovered within {within:.0f}s: {what}")


async def test_chaos_nothing_lost_nothing_twice():
    rnd = random.Random(SEED)
    log(f"seed {SEED}: {SIGNALS} signals, {TRIALS} kill(s) per service, broker and database restarts")
    stack = Stack.create()
    services: dict[str, Service] = {}
    simulators: list[Simulator] = []
    passed = False
    mail_sink = contextlib.ExitStack()
    try:
        await asyncio.to_thread(stack.up)
        await asyncio.to_thread(stack.setup)
        keys = stack.home / "keys.env"
        stack.run_cli(
            "ingest", "create-system", "Chaos council", "--council", "camden",
            "--rate-per-minute", "100000", "--key-file", str(keys),
        )  # fmt: skip
        stack.run_cli("partners", "create-partner", "Chaos partner", "--key-file", str(keys))
        council_key, partner_key = (read_env_file(keys)[k] for k in ("COUNCIL_API_KEY", "PARTNER_API_KEY"))
        smtp_port, maildir = free_port(), stack.home / "mail"
        if NOTIFIER:
            await _subscribe_by_mail(stack)
            mail_sink.enter_context(MailSink(maildir, smtp_port))
        for name in SERVICES:
            port = free_port()
            env = service_env(stack, name, port, smtp_port)
            services[name] = Service(name, env, port, stack.home / f"{name}.log")
            services[name].start()
        await asyncio.gather(*(s.ready() for s in services.values()))
        log(f"stack and services up in {stack.home}")

        receiver = WebhookReceiver()
        sock, hook_base = loopback_socket()
        async with serve(receiver.app, sock):
            partners_url = f"http://127.0.0.1:{services['partners'].port}"
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    f"{partners_url}/v1/webhooks",
                    json={"url": f"{hook_base}/hook"},
                    headers={"Authorization": f"Bearer {partner_key}"},
                )
            assert response.status_code == 201, response.text
            receiver.secret = response.json()["secret"]

            conn = await asyncpg.connect(stack.database_url)
            try:
                wards = [
                    r["code"] for r in await conn.fetch("SELECT code FROM gazetteer.wards ORDER BY code")
                ]
            finally:
                await conn.close()
            feeds_url = f"http://127.0.0.1:{services['feeds'].port}"
            followers = [
                SseFollower(f"{feeds_url}/wards/{w}/events", source=f"127.0.1.{i + 1}")
                for i, w in enumerate(wards)
            ]
            tasks = [asyncio.create_task(f.run()) for f in followers]
            async with asyncio.timeout(60):
                await asyncio.gather(*(f.connected.wait() for f in followers))
            try:
                faults = await _load_under_chaos(stack, services, simulators, council_key, rnd)
                await _recover(stack, services)
                await _check(stack, services, receiver, followers, faults)
                if NOTIFIER:
                    await _check_mail(stack, maildir, faults)
                passed = True
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for simulator in simulators:
            simulator.kill()
        for service in services.values():
            service.stop()
        mail_sink.close()
        await asyncio.to_thread(stack.down)
        if os.environ.get("CHAOS_KEEP") or not passed:
            log(f"kept {stack.home} (service and simulator logs)")
        else:
            stack.remove()


async def _load_under_chaos(stack, services, simulators, council_key, rnd) -> dict[str, list[float]]:
    """Run the simulators (Kafka and HTTP) and inflict the faults meanwhile; returns when each fault
    happened (time.monotonic()), by what it hit."""
    actions = [("kill", name) for name in SERVICES for _ in range(TRIALS)]
    actions += [("kafka", None), ("postgres", None)] * max(1, TRIALS // 2)
    rnd.shuffle(actions)
    per_action_s = 12.0  # about what one fault and the restart after it take on 2 busy cores
    duration = max(30.0, len(actions) * per_action_s)
    via_kafka, via_http = SIGNALS * 2 // 3, SIGNALS - SIGNALS * 2 // 3
    ingest_url = f"http://127.0.0.1:{services['ingest'].port}"
    seed = rnd.randrange(10**6)  # the two simulators get distinct seeds, so distinct event ids
    for sink, count, offset in (("kafka", via_kafka, 0), ("http", via_http, 1)):
        simulators.append(
            Simulator(stack, sink, ingest_url, council_key, count / duration, count, seed + offset)
        )
        simulators[-1].start()
    await wait_until("the load reaches ingest", lambda: _accepted(stack), 120)
    faults: dict[str, list[float]] = defaultdict(list)
    for kind, name in actions:
        await asyncio.sleep(rnd.uniform(0.5, per_action_s / 2))
        at = time.monotonic()
        if kind == "kill":
            log(f"kill -9 {name}")
            services[name].kill9()
            faults[name].append(at)
            await asyncio.sleep(rnd.uniform(0, 1.5))
            services[name].start()
            await services[name].ready()
        elif kind == "kafka":
            log("kill -9 the Kafka broker")
            await asyncio.to_thread(stack.kill_kafka)
            faults["kafka"].append(at)
            await asyncio.sleep(rnd.uniform(0.5, 3))
            await asyncio.to_thread(stack.up)
        else:
            log("crash PostgreSQL (immediate shutdown)")
            await asyncio.to_thread(stack.crash_postgres)
            faults["postgres"].append(at)
            await asyncio.sleep(rnd.uniform(0.5, 3))
            await asyncio.to_thread(stack.up)
        for service in services.values():
            if service.supervise():
                log(f"{service.name} had exited by itself (code {service.exits[-1]}); restarted")
        for simulator in simulators:
            simulator.supervise()
    log("faults done; waiting for the load to finish")

    async def finished() -> bool:
        return not any([s.supervise() for s in simulators])  # a list: supervise every one

    await wait_until("the simulators finish their load", finished, duration * 3 + 120)
    log("load done; simulator restarts: " + ", ".join(f"{s.sink} {s.restarts}" for s in simulators))
    return faults


async def _accepted(stack: Stack) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM ingest.accepted_signals")
    finally:
        await conn.close()


async def _recover(stack: Stack, services: dict[str, Service]) -> None:
    """Wait until every consumer has caught up and every queue is empty, twice in a row."""
    for service in services.values():
        service.supervise()
    await asyncio.gather(*(s.ready() for s in services.values()))
    kafka = stack.bootstrap

    async def quiet() -> bool:
        for service in services.values():
            service.supervise()
        lags = [
            await group_lag(kafka, "ingest", [COUNCIL_SIGNALS.name]),
            await group_lag(kafka, "prompter", [STREET_NEEDS.name]),
            await group_lag(kafka, "feeds", [PROMPTS.name]),
            await group_lag(kafka, "partners", [STREET_NEEDS.name]),
        ]
        conn = await asyncpg.connect(stack.database_url)
        try:
            positions = {
                r["partition"]: r["next_offset"]
                for r in await conn.fetch("SELECT partition, next_offset FROM aggregator.consumer_offsets")
            }
            outbox = await conn.fetchval("SELECT count(*) FROM aggregator.outbox")
            pending = await conn.fetchval("SELECT count(*) FROM partners.deliveries WHERE status = 'pending'")
            if NOTIFIER:
                lags.append(await group_lag(kafka, "notifier", [PROMPTS.name]))
                pending += await conn.fetchval(
                    "SELECT count(*) FROM notifier.outbox WHERE sent_at IS NULL AND failed_at IS NULL"
                )
        finally:
            await conn.close()
        ends = await end_offsets(kafka, SIGNALS_ANONYMISED.name)
        behind = sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())
        state.update(lags=lags, aggregator_behind=behind, outbox=outbox, pending=pending)
        return not any(lags) and not behind and not outbox and not pending

    async def twice() -> bool:
        if not await quiet():
            return False
        await asyncio.sleep(3)
        return await quiet()

    state: dict = {}
    try:
        await wait_until("consumers caught up, outbox and delivery queue empty", twice, 900 if LONG else 150)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; last seen (lags: ingest, prompter, feeds, partners, notifier) {state}"
        ) from None
    log("recovered: every consumer caught up")


async def _check(stack, services, receiver: WebhookReceiver, followers: list[SseFollower], faults) -> None:
    kafka = stack.bootstrap
    conn = await asyncpg.connect(stack.database_url)
    try:
        await _check_ingest(kafka, conn)
        live = await _check_aggregator(kafka, conn)
        street_needs = latest_by_key(await read_topic(kafka, STREET_NEEDS.name))
        await _check_published(conn, street_needs)
        await _check_partners(kafka, conn, street_needs, receiver, faults)
        await _check_prompts(kafka, conn)
    finally:
        await conn.close()
    await _check_sse(followers, stack)

    # Rebuild from the topic (the aggregator stopped, as the command requires): the same fold, and
    # nothing to publish, so what was published is what a replay computes.
    services["aggregator"].stop()
    settings = AggregatorSettings(
        _env_file=None, database_url=stack.database_url, kafka_bootstrap_servers=kafka
    )
    changes = await rebuild_state(settings, publish=False)
    conn = await asyncpg.connect(stack.database_url)
    try:
        rebuilt = await snapshot(conn)
    finally:
        await conn.close()
    assert rebuilt == live, "a rebuild from signals-anonymised gives the live fold"
    assert changes == 0, f"the rebuild would publish {changes} changes: published state differs from it"
    for service in services.values():
        assert not service.exits, f"{service.name} exited by itself {len(service.exits)} time(s)"


async def _check_ingest(kafka: str, conn: asyncpg.Connection) -> None:
    """Every signal on council-signals is accepted or dead-lettered; every accepted one is on the
    anonymised topic; the topic holds nothing else, and a repeated event is the same event."""
    system_id = await conn.fetchval("SELECT id FROM ingest.council_systems WHERE name = 'Chaos council'")
    accepted = {r["event_id"]: r["source"] for r in await conn.fetch("SELECT * FROM ingest.accepted_signals")}
    dead_keys = set()
    for r in await read_topic(kafka, DEAD_LETTERS.name):
        letter = json.loads(r.value)
        if letter.get("key_b64"):
            dead_keys.add(base64.b64decode(letter["key_b64"]).decode())
    sent = {r.key.decode() for r in await read_topic(kafka, COUNCIL_SIGNALS.name)}
    lost = {e for e in sent if event_uuid(system_id, e) not in accepted and e not in dead_keys}
    assert not lost, (
        f"{len(lost)} signals on council-signals neither accepted nor dead-lettered: {sorted(lost)[:5]}"
    )
    published: dict[str, dict] = {}
    repeats = 0
    for r in await read_topic(kafka, SIGNALS_ANONYMISED.name):
        event = json.loads(r.value)
        if event["event_id"] in published:
            repeats += 1
            assert published[event["event_id"]] == event, "a republished event is the same event"
        published[event["event_id"]] = event
    ids = {str(i) for i in accepted}
    assert ids == set(published), (
        f"accepted but not published: {len(ids - set(published))}; "
        f"published but not accepted: {len(set(published) - ids)}"
    )
    by_source = defaultdict(int)
    for source in accepted.values():
        by_source[source] += 1
    assert len(accepted) >= SIGNALS // 2, f"only {len(accepted)} of {SIGNALS} signals got through"
    assert by_source["http"] and by_source["kafka"], by_source
    log(
        f"ingest: {len(sent)} on council-signals, {len(accepted)} accepted ({dict(by_source)}), "
        f"{len(dead_keys)} dead-lettered, {repeats} republished after a kill (identical)"
    )


async def _check_aggregator(kafka: str, conn: asyncpg.Connection) -> SignalState:
    """Every record applied exactly once, and the fold equals the topic folded here."""
    records = await read_topic(kafka, SIGNALS_ANONYMISED.name)
    applied = await conn.fetchval("SELECT coalesce(sum(records), 0) FROM aggregator.consumer_offsets")
    assert applied == len(records), f"{applied} records applied for {len(records)} on the topic"
    expected = SignalState()
    expected.apply([SignalAnonymised.model_validate_json(r.value) for r in records])
    live = await snapshot(conn)
    assert live == expected, "the aggregator's fold equals the topic's events, each counted once"
    log(
        f"aggregator: {applied} records applied once each; fold of {len(live.raised)} raises equals the topic"
    )
    return live


async def _check_published(conn: asyncpg.Connection, street_needs: dict[str, dict | None]) -> None:
    """street-needs.v1 as a consumer reads it is the aggregator's published table, key by key."""
    rows = await conn.fetch("SELECT area_id, category, live, version FROM aggregator.published")
    table = {f"{r['area_id']}:{r['category']}": (r["live"], r["version"]) for r in rows}
    topic = {k: (v is not None, v["version"] if v else None) for k, v in street_needs.items()}
    assert set(table) == set(topic), "every published key is on the topic and nothing else"
    for key, (is_live, version) in table.items():
        assert topic[key][0] == is_live, key
        if is_live:
            assert topic[key][1] == version, key
    assert sum(1 for live, _ in table.values() if live) > 0, "the load published something"
    log(f"street-needs.v1: {len(table)} keys, each as the aggregator last published it")


async def _check_partners(kafka, conn, street_needs, receiver: WebhookReceiver, faults) -> None:
    """Partners stored every change once; every delivery arrived; a repeat has the same webhook-id
    and happened only around a fault that hit a delivery in flight."""
    history = await conn.fetch("SELECT key, version, change FROM partners.needs_history")
    seen = {(r["key"], r["version"], r["change"]) for r in history}
    for r in await read_topic(kafka, STREET_NEEDS.name):
        if r.value is not None:
            value = json.loads(r.value)
            assert (r.key.decode(), value["version"], "changed") in seen, "a change partners never stored"
    needs = {r["key"]: r["version"] for r in await conn.fetch("SELECT key, version FROM partners.needs")}
    for key, value in street_needs.items():
        if value is not None:
            assert needs.get(key) == value["version"], f"partners' view of {key}"
        else:
            assert key not in needs, f"{key} was removed"
    deliveries = await conn.fetch("SELECT message_id, status, body FROM partners.deliveries")
    assert deliveries, "the load caused webhook deliveries"
    assert {d["status"] for d in deliveries} == {"delivered"}
    bodies = {d["message_id"]: d["body"] for d in deliveries}
    assert receiver.bad_signatures == 0
    got: dict[str, list] = defaultdict(list)
    for receipt in receiver.receipts:
        got[receipt.webhook_id].append(receipt)
    assert set(got) == set(bodies), f"{len(set(bodies) - set(got))} deliveries never arrived"
    change_ids: dict[tuple, set[str]] = defaultdict(set)
    windows = sorted(faults["partners"] + faults["postgres"])
    repeated = 0
    for message_id, receipts in got.items():
        assert all(r.body == bodies[message_id].encode() for r in receipts), "a repeat is the same message"
        body = json.loads(receipts[0].body)
        data = body["data"]
        key = data.get("key") or f"{data['area_id']}:{data['category']}"
        change_ids[(body["type"], key, data["version"])].add(message_id)
        if len(receipts) > 1:
            repeated += 1
            first = receipts[0].at
            assert len(receipts) <= 1 + len(windows), f"{message_id} repeated more often than faults happened"
            assert any(first - WEBHOOK_IN_FLIGHT_S <= f <= first + WEBHOOK_IN_FLIGHT_S for f in windows), (
                f"{message_id} repeated without a fault while it was in flight"
            )
    assert all(len(ids) == 1 for ids in change_ids.values()), "one change, one webhook-id"
    log(
        f"webhooks: {len(bodies)} deliveries, {len(receiver.receipts)} received, {repeated} repeated "
        f"(same webhook-id, each within {WEBHOOK_IN_FLIGHT_S:.0f}s of a fault)"
    )


async def _check_prompts(kafka: str, conn: asyncpg.Connection) -> None:
    """The prompter's needs follow street-needs.v1; feeds hold every prompt as prompts.v1 says."""
    street_needs = latest_by_key(await read_topic(kafka, STREET_NEEDS.name))
    needs = {
        r["prompt_id"]: (r["version"], r["active"])
        for r in await conn.fetch("SELECT prompt_id, version, active FROM prompter.needs")
    }
    for key, value in street_needs.items():
        if value is not None:
            assert needs.get(key, (None, None))[0] == value["version"], f"prompter's need {key}"
    prompts = latest_by_key(await read_topic(kafka, PROMPTS.name))
    feeds = {
        r["prompt_id"]: (r["revision"], r["retired"])
        for r in await conn.fetch("SELECT prompt_id, revision, retired FROM feeds.prompts")
    }
    for key, value in prompts.items():
        if value is not None and value.get("event_type") != "prompt_retired":
            assert feeds.get(key) == (value["revision"], False), f"feeds' prompt {key}"
        else:
            assert key not in feeds or feeds[key][1], f"feeds still show retired prompt {key}"
    log(f"prompts.v1: {len(prompts)} prompts, feeds hold each as published")


async def _check_sse(followers: list[SseFollower], stack: Stack) -> None:
    """Each live follower saw every change of its ward from its first event on, once, with the data
    feeds recorded, though the stream broke at every feeds kill. The one documented gap: a resume
    point more than feeds' replay limit behind gets a `refresh` event instead of the changes."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        areas = Areas(await gazetteer_repo.load(conn))
        start = min((f.events[0].id for f in followers if f.events), default=None)
        changes = []
        while start is not None:
            page = await feeds_repo.changes_after(conn, start - 1 if not changes else changes[-1].seq)
            if not page:
                break
            changes.extend(page)
    finally:
        await conn.close()
    total = refreshes = 0
    for follower in followers:
        assert follower.repeats() == 0, f"{follower.url} was sent an event id twice"
        if not follower.events:
            continue
        selection = areas.for_ward(follower.url.rsplit("/", 2)[-2])
        first = follower.events[0].id
        expected = {c.seq: c for c in changes if c.seq >= first and c.visible_to(selection)}
        got = {e.id: e for e in follower.events if e.event != "refresh"}
        refresh_ids = [e.id for e in follower.events if e.event == "refresh"]
        refreshes += len(refresh_ids)
        for seq, event in got.items():
            assert seq in expected, f"{follower.url}: event {seq} is not a change of this ward"
            assert json.loads(event.data) == expected[seq].entry, f"{follower.url}: event {seq}'s data"
        ids = [e.id for e in follower.events]
        for seq in expected.keys() - got.keys():
            before = max((i for i in ids if i < seq), default=first)
            assert any(before < r >= seq for r in refresh_ids), f"{follower.url}: change {seq} never arrived"
        total += len(got)
    assert total > 0, "SSE followers received events"
    reconnects = sum(f.reconnects for f in followers)
    log(
        f"SSE: {total} events on {len(followers)} ward streams, {reconnects} reconnects, {refreshes} "
        "refreshes (resume point beyond the replay limit), no gap, no repeat"
    )


MAIL_SUBSCRIBERS = 2


async def _subscribe_by_mail(stack: Stack) -> None:
    """Residents with confirmed instant e-mail alerts (as if they had clicked the confirmation link)
    for every fourth Camden street, so a place prompt there is mailed to each of them."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        streets = [r["id"] for r in await conn.fetch("SELECT id FROM gazetteer.streets ORDER BY id")][::4]
        await conn.executemany(
            "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids, unit_ids,"
            " ward_codes, categories, frequency, status, confirm_sha256, confirm_expires_at, confirmed_at)"
            " VALUES ($1, $2, 'street', 'Camden', $3, '{}', '{}', '{}', 'instant', 'active', $4,"
            " now(), now())",
            [
                (uuid.uuid4(), f"chaos-{i}@example.invalid", streets, secrets.token_bytes(32))
                for i in range(MAIL_SUBSCRIBERS)
            ],
        )
    finally:
        await conn.close()


async def _check_mail(stack: Stack, maildir, faults) -> None:
    """Every queued mail reached the SMTP server; a repeat carries the same Message-ID and is one a
    sender had in flight at a fault: at most one per sender per notifier kill or database crash."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM notifier.outbox")
        failed = await conn.fetchval("SELECT count(*) FROM notifier.outbox WHERE failed_at IS NOT NULL")
    finally:
        await conn.close()
    by_id = Counter(m["Message-ID"] for _, m in messages(maildir))
    assert rows > 0, "the load caused e-mail alerts"
    assert failed == 0, f"{failed} mails given up"
    assert len(by_id) == rows, f"{rows} mails queued, {len(by_id)} distinct Message-IDs received"
    repeats = sum(n - 1 for n in by_id.values())
    faults_hit = len(faults["notifier"]) + len(faults["postgres"])
    assert repeats <= NOTIFIER_WORKERS * faults_hit, f"{repeats} repeated mails for {faults_hit} faults"
    log(f"e-mail: {rows} mails, each received; {repeats} repeated with the same Message-ID")
