"""``ipoke repro``: run ``dvc repro`` inside one MLflow parent run.

The parent run carries the git commit and every param; each stage that DVC (re)runs opens a child run
under it (see :mod:`ipoke.tracking`). Stages DVC skips as up to date log nothing new.
"""

from __future__ import annotations

import argparse
import subprocess

from ipoke.config import read_params
from ipoke.errors import IpokeError
from ipoke.stage import dataset_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", help="stages to reproduce (default: all)")
    p.add_argument("--force", action="store_true", help="rerun stages even if DVC finds them up to date")


def run(args: argparse.Namespace) -> int:
    from ipoke.tracking import pipeline_run

    cmd = ["dvc", "repro", *(["--force"] if args.force else []), *args.targets]
    with pipeline_run(dataset_name(), read_params(), name="repro"):
        code = subprocess.run(cmd, check=False).returncode
        if code:
            raise IpokeError(f"{' '.join(cmd)} failed with exit status {code}")
    return 0
