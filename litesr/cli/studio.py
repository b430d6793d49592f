"""``litesr studio``: a local web app to upscale images, compare ``litesr eval --save-images`` runs and rate them.

    litesr studio                                   # http://127.0.0.1:8765, session folder ./litesr_studio
    litesr studio --models-dir checkpoints/ --runs runs/imdn runs/rlfn
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "studio", help="local web app: upscale, compare evaluation runs, collect MOS ratings",
        description="Serve litesr studio, a web app for this machine: the Upscale page runs zoo models or "
                    "checkpoints on dropped images, Compare shows `litesr eval --save-images` runs side by side "
                    "with zoomed crops, Rate collects blind MOS ratings into SQLite. Needs the studio extra "
                    "(pip install 'litesr[studio]').",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; anything else is reachable "
                        "from the network, with no login)")
    p.add_argument("--port", type=int, default=8765, help="port (8765)")
    p.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                   help="checkpoints (.pth/.safetensors) offered next to the zoo models; architecture auto-detected")
    p.add_argument("--runs", type=Path, nargs="*", default=[], metavar="DIR",
                   help="folders written by `litesr eval --save-images DIR`, for the Compare and Rate pages")
    p.add_argument("--session", type=Path, default=Path("litesr_studio"), metavar="DIR",
                   help="where uploads, results and ratings.sqlite live (./litesr_studio)")
    p.add_argument("--max-upload-mb", type=float, default=64.0, metavar="MB", help="largest upload accepted (64)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse larger images (default: $LITESR_MAX_PIXELS or 64000000)")
    p.add_argument("--device", default=None, metavar="cpu|cuda", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(run=run)


def host_warning(host: str) -> str | None:
    """The warning printed when the studio listens beyond this machine."""
    if host in LOOPBACK:
        return None
    return (f"litesr studio: warning: listening on {host}, so anyone who can reach this machine can upload images, "
            "run models and read results (there is no login); use --host 127.0.0.1 to keep it local")


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..studio import StudioConfig, create_app
    except ImportError as exc:
        raise ConfigError(f"litesr studio needs the studio extra ({exc.name} is missing): "
                          "pip install 'litesr[studio]'") from None
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1..65535, not {args.port}")
    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb must be > 0, not {args.max_upload_mb}")
    if args.models_dir is not None and not args.models_dir.is_dir():
        raise ConfigError(f"{args.models_dir}: no such folder (--models-dir)")
    warning = host_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    config = StudioConfig(session_dir=args.session, models_dir=args.models_dir, runs=list(args.runs),
                          max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                          device=args.device, host=args.host)
    app = create_app(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"litesr studio: http://{shown}:{args.port}/ (session folder {args.session}; Ctrl+C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
