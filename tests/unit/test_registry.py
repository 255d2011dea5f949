"""The service registry is the one list of services: compose, Kubernetes and migrations agree with it."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.migrations import MIGRATIONS
from shared.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def test_every_service_has_its_package_and_migrations():
    for service in SERVICES:
        package = ROOT / "services" / service.name
        assert (package / "__main__.py").exists(), service.name
        assert (package / "main.py").exists(), service.name
        assert MIGRATIONS[service.schema] == service.migrations
        assert any(service.migrations.glob("*.sql")), f"{service.name} has no migrations"
    assert len({s.port for s in SERVICES}) == len(SERVICES), "two services share a port"


def test_docker_compose_runs_every_service_on_its_port():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for service in SERVICES:
        entry = compose[service.name]
        assert entry["command"] == f"python -m {service.module}"
        ports = [str(p) for p in entry.get("ports", [])]
        assert any(p.endswith(f"{service.port}:{service.port}") for p in ports), (service.name, ports)


def test_kubernetes_deploys_every_service_on_its_port():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/services.yaml").read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for service in SERVICES:
        (container,) = deployments[service.name]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", service.module]
        assert container["ports"][0]["containerPort"] == service.port


def _millicores(cpu: str) -> float:
    return float(cpu[:-1]) if cpu.endswith("m") else 1000 * float(cpu)


def test_background_services_yield_the_cpu_to_the_live_path_in_every_deployment():
    """Under load, the path from a council's POST to a resident's feed gets the cores first."""
    background = {s.name for s in SERVICES if s.background}
    assert background == {"partners", "notifier", "console"}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/services.yaml").read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    shares, requested = {}, {}
    for service in SERVICES:
        shares[service.name] = compose[service.name].get("cpu_shares", 1024)  # Docker's default
        (container,) = deployments[service.name]["spec"]["template"]["spec"]["containers"]
        requested[service.name] = _millicores(container["resources"]["requests"]["cpu"])
    for name in background:
        for live in {s.name for s in SERVICES} - background:
            assert shares[name] < shares[live], (name, live, shares)
            assert requested[name] < requested[live], (name, live, requested)
