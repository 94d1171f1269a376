"""``propagate dashboard RUN_DIR``: a running search, live in the browser (optuna-dashboard).

The run directory is served as an Optuna study (:class:`.run_storage.RunStorage`): trials
appear as evaluations land, with their islands and workers (user attributes), pruned and
failed ones, learning curves (intermediate values) and, with several metrics, the Pareto
front. It only reads the run directory, as ``propagate watch`` does: nothing is written
there, and nothing in it is executed. It listens on 127.0.0.1 unless ``--host`` says
otherwise; from a cluster's login node, forward the port: ``ssh -L 8080:127.0.0.1:8080
login-node``, then open http://127.0.0.1:8080 on your machine.

The server (``wsgiref``, ``http.server``, about 20 ms of CPU to import) is imported by
:func:`serve`: the ``propagate`` command adds this subcommand on every rank of every run.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_INSTALL = "pip install 'propagate[dashboard]' (or pip install optuna-dashboard)"


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``dashboard`` to the ``propagate`` subcommands."""
    dashboard = sub.add_parser(
        "dashboard", help="a running search, live in the browser (optuna-dashboard)"
    )
    dashboard.add_argument("run_dir", type=Path, help="the run directory")
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; see ssh -L)",
    )
    dashboard.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0: any free one)"
    )
    dashboard.set_defaults(handler=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    return serve(args.run_dir, args.host, args.port)


def serve(
    run_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve the dashboard of ``run_dir`` on ``host:port`` until Ctrl-C; returns 0.

    Args:
        run_dir: the run directory (running, finished or interrupted).
        host: the address to listen on.
        port: the port (0: a free one, which the announcement names).
        announce: takes each line saying where the dashboard is (default: print it).

    Raises:
        ConfigError: optuna-dashboard is missing, ``run_dir`` holds no run, or the address
            cannot be listened on.
        PropagateError: the run cannot be read.
    """
    from wsgiref.simple_server import make_server

    app = _app(Path(run_dir))
    try:
        server = make_server(host, port, app, *_server_classes())
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
        ) from None
    port = server.server_port
    say = announce or print
    say(f"dashboard of {run_dir} at http://{_url_host(host)}:{port}/dashboard/ (Ctrl-C to stop)")
    if host.startswith("127."):  # this machine only: from another one, through ssh
        say(
            f"from another machine: ssh -L {port}:127.0.0.1:{port} {socket.gethostname()}, "
            f"then open http://127.0.0.1:{port}/dashboard/ there"
        )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _app(run_dir: Path) -> Any:
    """optuna-dashboard's WSGI application over the run (read-only)."""
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError(f"propagate dashboard needs optuna-dashboard: {_INSTALL}") from None
    from .run_storage import RunStorage

    return optuna_dashboard.wsgi(RunStorage(run_dir))


def _url_host(host: str) -> str:
    """How a browser on this machine names ``host`` (every address: this one's too)."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else host


def _server_classes() -> tuple[type, type]:
    """The server class and the request handler class (defined here, where their bases are
    imported)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    class _Server(ThreadingMixIn, WSGIServer):
        """One thread a request: a browser asks for several things at once."""

        daemon_threads = True  # Ctrl-C does not wait for a browser's open connection

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A browser that went away mid-answer is no error worth a traceback."""
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    class _QuietHandler(WSGIRequestHandler):
        """No line per request on the terminal."""

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return _Server, _QuietHandler
