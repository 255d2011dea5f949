"""`python -m services.notifier`: serve the notifier service."""

import uvicorn

from .main import create_app
from .settings import NotifierSettings

if __name__ == "__main__":
    settings = NotifierSettings()
    uvicorn.run(
        create_app(settings, freeze_heap=True), host=settings.host, port=settings.port, log_config=None
    )
