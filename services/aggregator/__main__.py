"""`python -m services.aggregator`: serve the aggregator (HTTP on AGGREGATOR_PORT, default 8002)."""

import uvicorn

from .main import create_app
from .settings import AggregatorSettings

settings = AggregatorSettings()
uvicorn.run(create_app(settings, freeze_heap=True), host=settings.host, port=settings.port, log_config=None)
