"""The service's settings: one pydantic model, passed to worker processes as JSON in the environment."""

from __future__ import annotations

import ipaddress
import os

from pydantic import BaseModel, Field

ENVIRONMENT_VARIABLE = "REVIEWLENS_SERVE_CONFIG"
#: the pid of the server whose workers read the configuration: they end when it does
SUPERVISOR_VARIABLE = "REVIEWLENS_SERVE_SUPERVISOR"


def default_processes(workers: int) -> int:
    """Helper processes per worker when none are asked for: one helper lets a single worker put a second
    core to work on large batches; several workers already occupy the cores."""
    return 1 if workers == 1 and (os.cpu_count() or 1) > 1 else 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) reaches only this machine: localhost, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServeConfig(BaseModel):
    run_dirs: list[str] = Field(min_length=1, description="run directories; the first is the default model")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_batch: int = Field(default=256, ge=1, description="most texts in one model call")
    max_wait_ms: float = Field(default=0.0, ge=0, description="how long a model call waits for more requests")
    processes: int = Field(default=0, ge=0, description="helper processes sharing large model calls")
    cache_size: int = Field(default=10_000, ge=0, description="predictions kept per model (0: no cache)")
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    max_text_chars: int = Field(default=100_000, ge=1)
    max_batch_texts: int = Field(default=1000, ge=1)
    api_key: str | None = Field(default=None, min_length=1, description="bearer token every endpoint but /health needs")
    cors_origins: list[str] = Field(default_factory=list, description="origins whose pages may call the API")
    log_texts: bool = Field(default=False, description="whether log lines may hold review text")
    header_timeout: float = Field(default=5.0, gt=0, description="seconds a request may take to send its headers")
    max_header_bytes: int = Field(default=64 * 1024, ge=1, description="most bytes of request line and headers")
    max_header_count: int = Field(default=100, ge=1, description="most header lines in one request")
    body_timeout: float = Field(default=10.0, gt=0, description="seconds a request may take to send its body")
    max_connections: int = Field(default=256, ge=1, description="open connections per worker; beyond, 503")
    grace_period: float = Field(default=30.0, ge=0, description="seconds stopping waits for requests in flight")

    @property
    def loopback(self) -> bool:
        """Whether the server listens on this machine only."""
        return is_loopback(self.host)

    def to_environment(self) -> None:
        """For the worker processes: this configuration, and the process they end with (this one)."""
        os.environ[ENVIRONMENT_VARIABLE] = self.model_dump_json()
        os.environ[SUPERVISOR_VARIABLE] = str(os.getpid())

    @classmethod
    def from_environment(cls) -> ServeConfig:
        return cls.model_validate_json(os.environ[ENVIRONMENT_VARIABLE])
