"""The ``ipoke`` command line: one subcommand per user-facing job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ipoke.errors import IpokeError

# name -> (help, module exposing ``add_arguments(parser)`` and ``run(args)``)
COMMANDS: dict[str, tuple[str, str]] = {
    "repro": ("run the whole DVC pipeline under one MLflow parent run", "ipoke.pipeline"),
    "preset": ("the paper's settings per table column: list, show, run or apply one", "ipoke.preset_cli"),
    "synth": ("synthetic poking world: preview videos with their pokes", "ipoke.data.synthetic.cli"),
    "serve": ("serve the interactive poking web app for a trained pipeline", "ipoke.app.cli"),
    "sample": ("poke an image with a trained pipeline and write the sampled videos", "ipoke.sample_cli"),
    "weights": ("fetch and check the pretrained I3D and LPIPS/VGG16 weights", "ipoke.pretrained.cli"),
}


def _import(module: str):
    import importlib

    return importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipoke", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, module) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        mod = _import(module)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int | None] = args._run
    try:
        return int(run(args) or 0)
    except IpokeError as err:
        print(f"ipoke {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
