"""Run Kafka's `ProducerPerformance` and `ConsumerPerformance` (kafka-tools, the broker's version,
fetched from Maven Central with mvn) against the bench's broker, on a topic of the run's own."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["KafkaPerf", "kafka_perf"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LIBS = ROOT / ".local" / "kafka-tools" / "libs"
POM = HERE / "pom.xml"


@dataclass(frozen=True)
class KafkaPerf:
    records: int
    record_size: int
    partitions: int
    produced_per_s: float
    produce_latency_avg_ms: float
    consumed_per_s: float  # over the whole run, group join included
    fetch_per_s: float  # over the fetch time only (ConsumerPerformance's fetch.nMsg.sec)


def jars() -> Path:
    """kafka-tools and its dependencies under .local/kafka-tools/libs (mvn once per pom change)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    stamp = LIBS / ".pom.sha"
    if stamp.exists() and stamp.read_text() == digest and any(LIBS.glob("kafka-tools-*.jar")):
        return LIBS
    if not shutil.which("mvn"):
        raise RuntimeError("Maven (mvn) is needed to fetch kafka-tools from Maven Central")
    shutil.rmtree(LIBS, ignore_errors=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={LIBS}"],
        check=True,
        timeout=900,
    )
    stamp.write_text(digest)
    return LIBS


def _java(tool: str, args: list[str], timeout_s: float) -> str:
    out = subprocess.run(
        ["java", "-Xmx512m", "-cp", f"{jars()}/*", f"org.apache.kafka.tools.{tool}", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{tool} failed ({out.returncode}): {(out.stderr or out.stdout)[-500:]}")
    return out.stdout


async def _topic(bootstrap: str, name: str, partitions: int, create: bool) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        else:
            await admin.delete_topics([name])
    finally:
        await admin.close()


def kafka_perf(bootstrap: str, *, records: int, record_size: int = 300, partitions: int = 6) -> KafkaPerf:
    """Produce `records` of `record_size` bytes as fast as the broker takes them (acks=all,
    idempotent, as the services' producers), then consume them all with a fresh group."""
    topic = f"{os.environ.get('STREETNEEDS_TOPIC_PREFIX', '')}kafka-perf-{uuid.uuid4().hex[:8]}"
    asyncio.run(_topic(bootstrap, topic, partitions, create=True))
    try:
        produced = _java(
            "ProducerPerformance",
            [
                *("--topic", topic, "--num-records", str(records), "--record-size", str(record_size)),
                *("--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}"),
                *("acks=all", "enable.idempotence=true", "linger.ms=20", "batch.size=524288"),
            ],
            600,
        )
        final = produced.strip().splitlines()[-1]
        m = re.search(r"([\d.]+) records/sec.*?([\d.]+) ms avg latency", final)
        if not m:
            raise RuntimeError(f"ProducerPerformance said: {final}")
        consumed = _java(
            "ConsumerPerformance",
            [
                *("--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records)),
                *("--group", f"bench-kafka-perf-{uuid.uuid4().hex[:8]}", "--timeout", "60000"),
            ],
            600,
        )
        lines = [ln for ln in consumed.strip().splitlines() if ln.strip()]
        header = [h.strip() for h in lines[-2].split(",")]
        values = dict(zip(header, (v.strip() for v in lines[-1].split(",")), strict=True))
        return KafkaPerf(
            records=records,
            record_size=record_size,
            partitions=partitions,
            produced_per_s=float(m.group(1)),
            produce_latency_avg_ms=float(m.group(2)),
            consumed_per_s=float(values["nMsg.sec"]),
            fetch_per_s=float(values["fetch.nMsg.sec"]),
        )
    finally:
        asyncio.run(_topic(bootstrap, topic, partitions, create=False))


if __name__ == "__main__":
    print(kafka_perf(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"), records=200_000))
