"""The ``litesr`` command: a thin layer over the library. Each sub-command lives in its own module here and exposes
``add_parser(subparsers)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from ..errors import LitesrError, clean_message

SUBCOMMANDS = ("upscale", "eval", "train", "models", "profile", "leaderboard", "export", "quantize", "convert",
               "inspect", "studio", "metrics", "compare", "fit_niqe", "zssr", "dip", "sr3")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="litesr", description="Lightweight single-image super-resolution toolkit")
    parser.add_argument("--version", action="version", version=f"litesr {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if importlib.util.find_spec(f"{__name__}.{name}") is None:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litesr")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except LitesrError as exc:
        print(f"litesr {args.command}: error: {clean_message(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"litesr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
