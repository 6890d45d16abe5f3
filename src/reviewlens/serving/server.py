"""Running the app under uvicorn: one process, or several workers sharing the socket (and their metrics)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from reviewlens.serving.config import ServeConfig
from reviewlens.serving.models import check_runs

#: How long shutdown waits for in-flight requests before closing connections.
GRACEFUL_SHUTDOWN_S = 30


def serve(config: ServeConfig) -> None:
    """Serve until SIGINT or SIGTERM; shutdown stops accepting, then answers the requests in flight."""
    check_runs(config.run_dirs)  # a bad run fails here, in one line, before uvicorn starts
    import uvicorn

    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "server_header": False,
    }
    if config.workers == 1:
        from reviewlens.serving.app import create_app

        uvicorn.run(create_app(config), **options)
        return
    config.to_environment()
    with tempfile.TemporaryDirectory(prefix="reviewlens-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # the workers add up their samples there
        uvicorn.run(
            "reviewlens.serving.app:app_from_environment",
            factory=True,
            workers=config.workers,
            **options,
        )
