"""`python -m services.prompter`: serve the prompter's HTTP API and Kafka consumers."""

import uvicorn

from .main import create_app
from .settings import PrompterSettings

settings = PrompterSettings()
uvicorn.run(create_app(settings, freeze_heap=True), host=settings.host, port=settings.port, log_config=None)
