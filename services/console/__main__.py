"""`python -m services.console`: serve the operators' console."""

import uvicorn

from .main import create_app
from .settings import ConsoleSettings

if __name__ == "__main__":
    settings = ConsoleSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
