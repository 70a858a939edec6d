"""``ipoke preset``: the paper's table columns as one command each (see :mod:`ipoke.presets`).

    ipoke preset list                        the presets and the tables they reproduce
    ipoke preset show pp128 [-S KEY=VALUE]   what every stage will read; runs nothing, changes nothing
    ipoke preset run pp128 [-S KEY=VALUE] [--dvc "ARGS"]
                                             dvc exp run with the preset's keys, then yours, under one MLflow
                                             parent run (ARGS go to dvc exp run, e.g. "--queue -n pp128")
    ipoke preset apply pp128 [-S KEY=VALUE]  write them into params.yaml (for dvc repro, make repro, Prefect)
"""

from __future__ import annotations

import argparse
import shlex
import subprocess

from ipoke import presets
from ipoke.config import PARAMS_FILE
from ipoke.errors import IpokeError
from ipoke.evaluation.paper_tables import PAPER_DATASETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("action", choices=["list", "show", "run", "apply"])
    p.add_argument("name", nargs="?", choices=presets.preset_names(), help="preset (see: ipoke preset list)")
    p.add_argument(
        "-S", "--set-param", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="a params.yaml value on top of the preset (DVC's -S syntax); repeatable",
    )
    p.add_argument("--dvc", default="", metavar="ARGS", help='run: more dvc exp run arguments ("--queue")')


def describe(name: str) -> str:
    keys = presets.overrides(name)
    label = PAPER_DATASETS[keys["dataset"]]
    found = "; ".join(presets.tables(name))
    size, d = keys[presets.RESOLUTION_KEYS[0]], keys[presets.LATENT_KEYS[0]]
    return f"{name:9s} {label} at {size} px, d={d}: {found}"


def show(sets: list[str], params: dict) -> str:
    lines = [f"dvc exp run {' '.join('-S ' + s for s in sets)}", ""]
    for stage, rows in presets.summary(params).items():
        lines.append(stage)
        lines += [f"  {label:22s} {value}" for label, value in rows.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        print("\n".join(describe(name) for name in presets.preset_names()))
        return 0
    if args.name is None:
        raise IpokeError(f"ipoke preset {args.action} needs a preset: {', '.join(presets.preset_names())}")
    sets = presets.set_args(args.name, args.sets)
    params = presets.resolve(sets)
    presets.check(params)
    if args.action == "show":
        print(show(sets, params))
    elif args.action == "apply":
        presets.apply(PARAMS_FILE, sets)
        print(f"{PARAMS_FILE}: preset {args.name} applied ({len(sets)} keys); git diff shows them")
    else:
        from ipoke.tracking import pipeline_run

        cmd = ["dvc", "exp", "run", *(a for s in sets for a in ("-S", s)), *shlex.split(args.dvc)]
        with pipeline_run(params["dataset"], params, name=f"preset {args.name}"):
            code = subprocess.run(cmd, check=False).returncode
        if code:
            raise IpokeError(f"{' '.join(cmd)} failed with exit status {code}")
    return 0
