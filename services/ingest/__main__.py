"""`python -m services.ingest`: run the ingest service."""

import uvicorn

from .main import create_app
from .settings import IngestSettings

if __name__ == "__main__":
    settings = IngestSettings()
    uvicorn.run(
        create_app(settings, freeze_heap=True), host=settings.host, port=settings.port, log_config=None
    )
