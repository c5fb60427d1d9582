"""What `encoderkit serve` is configured with, and the bind check that keeps it private by default."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from encoderkit.errors import UserError

TOKEN_ENV = "ENCODERKIT_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the server. Defaults suit one CPU or GPU process.

    `max_batch` counts inputs (questions, texts) per model call across requests; `batch_wait_ms`
    is how long the first request of a batch waits for others (while the model is busy, requests
    queue anyway, so a batch fills up under load without any wait).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_inputs: int = 64  # per request
    max_chars: int = 50_000  # per text field (a QA context of ~50k characters is ~30 windows)
    max_body_bytes: int = 1 << 20
    timeout_s: float = 30.0
    max_batch: int = 32
    batch_wait_ms: float = 2.0
    max_queue: int = 1024  # requests waiting for the model; beyond it: 503

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_chars", "max_body_bytes", "max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if not self.timeout_s > 0:
            raise UserError(f"--timeout-s: must be > 0, got {self.timeout_s}")
        if self.batch_wait_ms < 0:
            raise UserError(f"--batch-wait-ms: must be >= 0, got {self.batch_wait_ms}")
        if not 0 <= self.port < 65536:
            raise UserError(f"--port: must be in 0..65535, got {self.port}")
        if self.token is not None and not self.token.strip():
            raise UserError(f"--token / {TOKEN_ENV}: empty token")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def check_bind(host: str, token: str | None, allow_no_token: bool) -> None:
    """Refuse to serve a model to the network without a bearer token, unless asked to explicitly."""
    if is_loopback(host) or token or allow_no_token:
        return
    raise UserError(
        f"--host {host}: not a loopback address, so anyone who can reach it could use the model; "
        f"set a bearer token with {TOKEN_ENV}=... (or --token), or pass --allow-no-token"
    )
