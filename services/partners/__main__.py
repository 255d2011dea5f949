"""`python -m services.partners`: run the partner API and its webhook delivery worker."""

import uvicorn

from .main import create_app
from .settings import PartnersSettings

if __name__ == "__main__":
    settings = PartnersSettings()
    uvicorn.run(
        create_app(settings, freeze_heap=True), host=settings.host, port=settings.port, log_config=None
    )
