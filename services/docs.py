"""Generate the committed contract documents in docs/ from the code: AsyncAPI, JSON Schema, OpenAPI.

python -m services.docs write   # regenerate (make docs)
python -m services.docs check   # exit 1 if docs/ drifted from the code (the tests do the same)
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import AliasChoices, AliasPath, SecretStr

from shared.contracts import ALL_TOPICS
from shared.registry import SERVICES as REGISTRY
from shared.registry import by_name
from shared.settings import CommonSettings

__all__ = ["DOCS", "SERVICES", "asyncapi", "documents", "json_schemas", "openapi"]

DOCS = Path(__file__).resolve().parents[1] / "docs"
SERVICES = tuple(s.name for s in REGISTRY)


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0 for every topic in the registry, with its Kafka topic configuration."""
    broker = KafkaBroker("127.0.0.1:19092", description="Local single-node KRaft broker")
    for topic in ALL_TOPICS:
        broker.publisher(
            topic.base_name,
            schema=topic.model,
            title=topic.base_name,
            description=f"{topic.description} Audience: {topic.audience}.",
        )
    spec: dict[str, Any] = json.loads(
        AsyncAPI(
            broker,
            title="streetneeds events",
            version="1.0.0",
            schema_version="3.0.0",
            description="Topics connecting the streetneeds services. Generated from "
            "shared/contracts (make docs); do not edit by hand.",
        )
        .to_specification()
        .to_json()
    )
    for topic in ALL_TOPICS:
        channel = spec["channels"][topic.base_name]
        # Kafka channel binding 0.4.0: partitions and topic configuration sit with the contract.
        channel["bindings"]["kafka"].update(
            {
                "partitions": topic.partitions,
                "replicas": 1,
                "topicConfiguration": {
                    "cleanup.policy": ["compact" if topic.compacted else "delete"],
                    "retention.ms": topic.retention_ms,
                },
            }
        )
        channel["description"] += f" Key: {topic.key}."
    return spec


def json_schemas() -> dict[str, dict[str, Any]]:
    return {f"{topic.base_name}.schema.json": topic.json_schema() for topic in ALL_TOPICS}


def openapi(service: str) -> dict[str, Any]:
    """The service's OpenAPI document, from its FastAPI app (built, never started)."""
    main = importlib.import_module(f"{by_name(service).module}.main")
    settings_cls = _settings_class(service)
    # Building the app reads no secret and connects nowhere, so unvalidated placeholders suffice.
    settings = settings_cls.model_construct(
        database_url=SecretStr("postgresql://docs"), kafka_bootstrap_servers="docs:9092"
    )
    app: FastAPI = main.create_app(settings)
    return app.openapi()


def _settings_class(service: str) -> type[CommonSettings]:
    module = importlib.import_module(f"{by_name(service).module}.settings")
    (cls,) = {
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, CommonSettings) and v is not CommonSettings
    }
    return cls


def _variable(alias: str | AliasPath | AliasChoices | None) -> str | None:
    """The environment variable an aliased field reads first; None when the field has no alias."""
    if alias is None:
        return None
    first = alias.choices[0] if isinstance(alias, AliasChoices) else alias
    if not isinstance(first, str):
        raise TypeError(f"an alias path names no environment variable: {first!r}")
    return first


def configuration_table() -> str:
    """The README's configuration table: every environment variable every service reads."""
    rows = ["| variable | service | default | what it is |", "| --- | --- | --- | --- |"]
    classes = [("all", CommonSettings)] + [
        (service, _settings_class(service))
        for service in SERVICES
        if (DOCS.parent / "services" / service / "settings.py").exists()
    ]
    for service, cls in classes:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            if service != "all" and name in CommonSettings.model_fields:
                continue
            env = _variable(field.validation_alias) or f"{prefix}{name}".upper()
            if field.is_required():
                default = "**required**"
            elif "secret" in str(field.annotation).lower():
                default = "(secret)"
            else:
                default = f"`{field.default}`" if field.default not in (None, "") else ""
            what = ": ".join(filter(None, [field.title, field.description])).replace("|", "\\|")
            rows.append(f"| `{env}` | {service} | {default} | {what} |")
    return "\n".join(rows) + "\n"


def documents() -> dict[Path, dict[str, Any]]:
    docs = {DOCS / "asyncapi.json": asyncapi()}
    docs.update({DOCS / "schemas" / name: schema for name, schema in json_schemas().items()})
    for service in SERVICES:
        if (Path(__file__).resolve().parents[1] / "services" / service / "main.py").exists():
            docs[DOCS / "openapi" / f"{service}.json"] = openapi(service)
    return docs


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


README = DOCS.parent / "README.md"
CONFIG_START, CONFIG_END = "<!-- CONFIG:START (make docs) -->\n", "<!-- CONFIG:END -->"


def readme_with_configuration(readme: str) -> str:
    head, _, rest = readme.partition(CONFIG_START)
    _, _, tail = rest.partition(CONFIG_END)
    return f"{head}{CONFIG_START}{configuration_table()}{CONFIG_END}{tail}"


def main(command: str) -> int:
    drifted = []
    readme = README.read_text()
    if command == "write":
        README.write_text(readme_with_configuration(readme))
    elif readme_with_configuration(readme) != readme:
        drifted.append("README.md (configuration table)")
    for path, doc in documents().items():
        text = render(doc)
        if command == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            drifted.append(str(path.relative_to(DOCS.parent)))
    if drifted:
        print("out of date (run `make docs`): " + ", ".join(drifted), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "check"))
