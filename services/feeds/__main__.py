"""`python -m services.feeds`: serve the feeds service."""

import uvicorn

from .main import create_app
from .settings import FeedsSettings

if __name__ == "__main__":
    settings = FeedsSettings()
    uvicorn.run(
        create_app(settings, freeze_heap=True), host=settings.host, port=settings.port, log_config=None
    )
