"""``zoo serve MODEL``: a local prediction page and JSON API for a zoo artifact folder or Hub id.

Needs the ``serve`` extra (``pip install 'zoo-transfer[serve]'``: Starlette, uvicorn, python-multipart).
"""

from __future__ import annotations

import socket
from typing import Any

from zoo.errors import ConfigError
from zoo.inference import open_model


def serve(
    model: str,
    host: str = "127.0.0.1",
    port: int = 7860,
    top_k: int = 5,
    revision: str | None = None,
    log_level: str = "warning",
) -> None:
    """Load ``model`` (folder, Hub id or registry name) the way ``zoo predict`` does and serve it until Ctrl-C."""
    _check_port(host, port)
    app = build_app(model, top_k=top_k, revision=revision, host=host)
    import uvicorn  # optional extra, imported only when serving

    print(f"zoo serve: {model} on http://{host}:{port}/  (JSON: POST /api/predict; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def build_app(model: str, top_k: int = 5, revision: str | None = None, host: str | None = None) -> Any:
    """The Starlette app for a model name; a ConfigError naming the extra when Starlette is missing."""
    try:
        from zoo.serve.app import create_app  # Starlette is an optional extra: import it only here
    except ImportError as exc:
        raise ConfigError(
            f"zoo serve needs the 'serve' extra ({exc.name} is missing): pip install 'zoo-transfer[serve]'"
        ) from exc
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k}: use 1 or more")
    return create_app(open_model(model, revision=revision), spec=model, top_k=top_k, host=host)


def _check_port(host: str, port: int) -> None:
    """Fail before loading the model when the address is taken (uvicorn would only log it and exit)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another port with "
                f"--port, e.g. --port {port + 1}"
            ) from exc
