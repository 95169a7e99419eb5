"""``gankit serve``: the local web explorer over one or more runs (the optional ``serve`` extra).

Thin glue: check the options, load the runs once, hand a :mod:`gankit.serve.app` to uvicorn.
"""

from __future__ import annotations

import argparse
import socket

from gankit.cli.options import number
from gankit.errors import ConfigError
from gankit.outputs import output_dir

INSTALL = 'gankit serve needs the serve extra: pip install -e ".[serve]" (Starlette and uvicorn)'


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be bound (uvicorn would log and exit)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: {e.strerror or e}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise ConfigError(
                f"--port {port} on {host}: {e.strerror or e} (choose another --port)"
            ) from None


def _lpips(args: argparse.Namespace):
    if not (args.vgg or args.lpips):
        return None
    from gankit.evaluation.metrics.lpips import load_lpips

    return load_lpips(args.vgg, args.lpips, args.device)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError(INSTALL) from None
    from gankit.serve.app import LOOPBACK, Explorer, create_app
    from gankit.serve.runs import load_slots

    out = output_dir(args.out, "--out") if args.out else None
    _check_port(args.host, args.port)
    if args.host not in LOOPBACK:
        print(
            f"warning: --host {args.host} opens the explorer to other machines; it has no login, "
            "so anyone who reaches it can run the models and upload images",
            flush=True,
        )
    lpips = _lpips(args)
    slots = load_slots(args.runs, args.device)
    for s in slots:
        said = f"error: {s.error}" if s.run is None else f"{s.run.cfg.task} run, step {s.run.step}"
        print(f"  [{s.index}] {s.name}: {said}", flush=True)
    explorer = Explorer(slots, out, lpips)
    app = create_app(explorer, args.host)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"gankit serve: http://{shown}:{args.port}/ (Ctrl+C stops)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        explorer.close()
    return 0


def add_serve_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit serve`` on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "serve",
        help="a local web page to explore runs: samples, walks, style mixing, projection",
        description="Load the runs once and serve a page on 127.0.0.1 to sample them (seed, "
        "truncation, noise, class), walk between seeds, mix styles (StyleGAN2), translate and "
        "project uploaded images, and read their training curves. Needs the serve extra: "
        'pip install -e ".[serve]".',
    )
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--port", type=number(int, 1, 65535), default=8000, help="port (default 8000)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; another prints a warning)",
    )
    p.add_argument("--out", help="also save projections here (default: only a temporary folder)")
    p.add_argument("--vgg", help="torchvision's vgg16-397923af.pth: offers the lpips distance")
    p.add_argument("--lpips", help="LPIPS v0.1 vgg.pth (with --vgg)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default warning; info logs every request)",
    )
    p.set_defaults(func=_cmd_serve)
