"""Running the app under uvicorn: one process, or several workers sharing the socket (and their metrics).

Every run is loaded before the port is bound, so a run that cannot be served fails in one line. SIGTERM
stops accepting, answers the requests in flight, and exits with 0.
"""

from __future__ import annotations

import copy
import errno
import functools
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, NoReturn

from reviewlens.errors import ReviewlensError
from reviewlens.processes import process_pool
from reviewlens.serving.config import ServeConfig
from reviewlens.serving.models import check_runs, load_run
from reviewlens.serving.protocol import BoundedProtocol


def serve(config: ServeConfig) -> None:
    """Serve until SIGINT or SIGTERM; shutdown stops accepting, then answers the requests in flight."""
    check_runs(config.run_dirs)  # a bad run fails here, in one line, before uvicorn starts
    check_port(config.host, config.port)
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    logging_config = copy.deepcopy(LOGGING_CONFIG)  # the service's own records print as uvicorn's do
    logging_config["loggers"]["reviewlens"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "access_log": False,
        "log_config": logging_config,
        # The protocol closes what is left at the end of the grace period; uvicorn's cancelling stays a backstop.
        "timeout_graceful_shutdown": config.grace_period + 5,
        "limit_concurrency": config.max_connections + 1,  # uvicorn counts the connection asking in
        "server_header": False,
        "http": functools.partial(
            BoundedProtocol,
            header_timeout=config.header_timeout,
            max_header_bytes=config.max_header_bytes,
            max_header_count=config.max_header_count,
            body_timeout=config.body_timeout,
            grace_period=config.grace_period,
        ),
    }
    if config.workers == 1:
        from reviewlens.serving.app import create_app

        app = create_app(config)
        app.state.reviewlens.load()
    else:
        check_loadable(config.run_dirs)
    if not config.loopback and config.api_key is None:
        sys.stderr.write(
            f"warning: --host {config.host} serves anyone who can reach this machine, with no API key; "
            "set --api-key or REVIEWLENS_API_KEY\n"
        )
    # uvicorn raises the SIGTERM it handled again once it has shut down; that is the stop asked for: exit 0.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        if config.workers == 1:
            uvicorn.run(app, **options)
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
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_port(host: str, port: int) -> None:
    """One line, before anything is loaded, where the port cannot be had (uvicorn would log an error and exit 3)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ReviewlensError(f"--host {host} cannot be resolved ({error.strerror}); pass an address") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ReviewlensError(
                    f"--port {port} is in use on {host}; stop what serves there, or pass another --port"
                ) from None
            raise ReviewlensError(
                f"--host {host} --port {port} cannot be served ({error.strerror or error}); pass another"
            ) from None


def _stopped(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def check_loadable(run_dirs: Sequence[str]) -> None:
    """Load every run once in a short-lived process, so that the worker processes will load them too; the
    server's own process stays as small as it was (a Keras run would bring TensorFlow into it)."""
    with process_pool(1) as process:
        problem = process.submit(_load_problem, list(run_dirs)).result()
    if problem is not None:
        raise ReviewlensError(problem)


def _load_problem(run_dirs: list[str]) -> str | None:
    try:
        for run_dir in run_dirs:
            load_run(run_dir)
    except ReviewlensError as error:
        return str(error)
    return None
