"""`encoderkit serve`: load the model once, bind the socket, run uvicorn until Ctrl+C."""

from __future__ import annotations

import contextlib
import socket
import sys

from encoderkit.errors import UserError
from encoderkit.serving.settings import ServeSettings


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is a one-line error and port 0 picks a free one.

    Raises:
        UserError: the address cannot be bound (in use, not this machine's, no permission).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(model: str, settings: ServeSettings, log_level: str = "warning") -> None:
    """Serve `model` (an encoderkit model folder, or a masked-LM checkpoint for fill-mask)."""
    import uvicorn

    from encoderkit.inference.predictor import Predictor
    from encoderkit.serving.app import create_app

    sock = bind(settings.host, settings.port)  # before loading the model: fail fast
    predictor = Predictor.load(model)
    app = create_app(predictor, settings, model_name=model)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = "bearer token required" if settings.token else "no token"
    url = f"http://{shown}:{port}/"
    print(f"serving {predictor.task} model {model} on {url} ({auth})", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level in ("info", "debug"))
    # Ctrl+C is how a server stops: uvicorn re-raises it after shutting down gracefully.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])
    print("server stopped", file=sys.stderr, flush=True)
