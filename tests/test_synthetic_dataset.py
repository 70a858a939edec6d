"""The ``synthetic`` download source end to end: a small dataset written twice (in parallel and serially)
is byte-identical, its mp4 bytes do not depend on the CPU's SIMD paths, it has a valid manifest split by
object, every mp4 decodes with decord, and the preview command draws it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ipoke.cli import main as ipoke_main
from ipoke.config import ParamsError, parse_section
from ipoke.data import manifest
from ipoke.data.sources import load as load_source
from ipoke.data.sources.params import DownloadParams
from ipoke.data.sources.synthetic import Params
from ipoke.data.synthetic import world
from ipoke.data.synthetic.groundtruth import load_gt
from ipoke.data.synthetic.video import ENCODER_OPTIONS, read_mp4, write_mp4

SMALL = dict(n_objects=4, videos_per_object=2, resolution=64, n_frames=32)


def build(tmp_path, name, **overrides):
    params = DownloadParams(source="synthetic", synthetic=Params(**(SMALL | overrides)))
    out = tmp_path / name
    out.mkdir()
    result = load_source("synthetic").build(params, out)
    manifest.write(result.manifest, out)
    return out, result


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synthetic")
    return build(tmp, "parallel", workers=2), build(tmp, "serial", workers=1)


def digest_tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def test_reruns_are_byte_identical_in_parallel_and_serially(datasets):
    (a, ra), (b, rb) = datasets
    assert not ra.skipped
    assert digest_tree(a) == digest_tree(b)
    assert len(digest_tree(a)) == 2 * 8 + 1


def test_mp4_bytes_are_the_same_without_simd(tmp_path):
    """ffmpeg restricted to its C code (``-cpuflags 0``, as on a CPU without the SIMD paths of this one)
    writes the same bytes: swscale's default RGB -> yuv420p rounding differs between those paths."""
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 48)[None, :, None, None] + np.linspace(0, 90, 48)[None, None, :, None]
    frames = np.clip(ramp + rng.normal(0, 40, (6, 48, 48, 3)), 0, 255).astype(np.uint8)
    write_mp4(tmp_path / "simd.mp4", frames, 25.0, 18)
    writer = imageio_ffmpeg.write_frames(
        str(tmp_path / "c.mp4"), (48, 48), fps=25.0, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        macro_block_size=1, ffmpeg_log_level="error", input_params=["-cpuflags", "0"],
        output_params=["-crf", "18", *ENCODER_OPTIONS],
    )  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()
    assert (tmp_path / "simd.mp4").read_bytes() == (tmp_path / "c.mp4").read_bytes()


def test_manifest_contract_and_object_splits(datasets):
    (root, _), _ = datasets
    table = manifest.read(root)
    assert list(table.columns)[: len(manifest.COLUMNS)] == list(manifest.COLUMNS)
    assert {"gt_path", "family"} <= set(table.columns)
    assert len(table) == 8 and table["video_id"].is_unique
    assert (table["width"] == 64).all() and (table["height"] == 64).all() and (table["n_frames"] == 32).all()
    assert (table["fps"] == 25.0).all() and set(table["family"]) == {"plant", "puppet"}
    splits = table.groupby("object_id")["split"].nunique()
    assert (splits == 1).all(), "an object appears in both splits"
    test_objects = table.loc[table["split"] == "test", "object_id"].unique()
    assert len(test_objects) >= 2  # at least one per family
    for row in table.itertuples():
        assert row.path == f"videos/{row.video_id}.mp4" and row.gt_path == f"gt/{row.video_id}.npz"
        assert hashlib.sha256((root / row.path).read_bytes()).hexdigest() == row.sha256
        assert row.object_id in row.video_id and row.family in row.object_id


def test_decord_reads_every_video_like_the_renderer_drew_it(datasets):
    (root, _), _ = datasets
    table = manifest.read(root)
    params = Params(**SMALL)
    for row in table.itertuples():
        frames = read_mp4(root / row.path)
        assert frames.shape == (row.n_frames, row.height, row.width, 3) and frames.dtype == np.uint8
        gt = load_gt(root / row.gt_path)
        assert gt.size == (row.height, row.width) and gt.masks.shape[0] == row.n_frames
    spec = world.plan(params)[0]
    drawn, _ = world.render_video(params, spec)
    decoded = read_mp4(root / f"videos/{spec.video_id}.mp4")
    assert np.abs(decoded.astype(float) - drawn).mean() < 3.0


def test_split_plan_holds_out_instances_per_family():
    specs = world.plan(Params(n_objects=80, videos_per_object=3, seed=4))
    test = {s.object_id for s in specs if s.split == "test"}
    assert len(test) == 16 and {o.split("-")[0] for o in test} == {"plant", "puppet"}
    assert len(specs) == 240 and len({s.video_id for s in specs}) == 240
    assert {s.object_id for s in specs if s.split == "train"}.isdisjoint(test)


def test_preview_writes_a_gif_grid(datasets, tmp_path):
    import imageio.v3 as iio

    (root, _), _ = datasets
    out = tmp_path / "preview.gif"
    assert ipoke_main(["synth", "preview", "--data", str(root), "--out", str(out), "--videos", "4",
                       "--columns", "2", "--scale", "2"]) == 0  # fmt: skip
    gif = iio.imread(out, index=None)
    # GIF writers merge identical consecutive frames (still stretches), so only bound the count.
    assert 1 < gif.shape[0] <= 32 and gif.shape[1:3] == (2 * 64 * 2, 2 * 64 * 2)
    assert ipoke_main(["synth", "preview", "--data", str(tmp_path / "nothing"), "--out", str(out)]) == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"resolution": 63}, "even"),
        ({"poke_reach": [0.3, 0.1]}, "poke_reach"),
        ({"families": ["plant", "tree"]}, "families"),
        ({"n_frames": 20}, "n_frames"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_bad_params_are_named(bad, message):
    with pytest.raises(ParamsError, match=message):
        parse_section("download.synthetic", bad, Params)
