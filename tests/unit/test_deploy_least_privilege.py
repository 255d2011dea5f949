"""Compose and Kubernetes give each service only its own secrets, and compose publishes on loopback only."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]
PREFIXES = {s.name: f"{s.name.upper()}_" for s in SERVICES}


def test_compose_gives_each_service_only_its_own_secrets_on_loopback_ports() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for service in SERVICES:
        entry = compose[service.name]
        env = entry["environment"]
        others = tuple(p for name, p in PREFIXES.items() if name != service.name)
        assert not [k for k in env if k.startswith(others)], service.name
        assert env["DATABASE_URL"] == f"${{{PREFIXES[service.name]}DATABASE_URL:?set " + (
            f"{PREFIXES[service.name]}DATABASE_URL in .env}}"
        )
        assert not [v for v in env.values() if "change-me" in str(v).lower()], service.name
        assert all(str(p).startswith("127.0.0.1:") for p in entry.get("ports", [])), service.name


def test_kubernetes_gives_each_service_its_own_secret() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/services.yaml").read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    secrets = {
        d["metadata"]["name"]: d["stringData"]
        for d in yaml.safe_load_all((ROOT / "deploy/k8s/secret.example.yaml").read_text())
    }
    for service in SERVICES:
        (container,) = deployments[service.name]["spec"]["template"]["spec"]["containers"]
        refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
        assert refs == [f"streetneeds-{service.name}"], service.name
        own = secrets[f"streetneeds-{service.name}"]
        assert "streetneeds_" + service.name in own["DATABASE_URL"]
        if service.name != "ingest":
            assert not [k for k in own if "PSEUDONYM" in k], "only ingest holds the pseudonym keys"
