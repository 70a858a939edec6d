"""Poke simulation: thresholds, patches, background pokes, and statistics against synthetic GT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_shards import read_tar, synthetic_pipeline

from ipoke.data.motion_evidence import motion_evidence
from ipoke.data.pokes import (
    PokeParams,
    background_candidates,
    draw_patches,
    foreground_candidates,
    normalised_magnitude,
    sample_pokes,
)
from ipoke.data.shards import npy_load


def disc_flow(size: int = 48, centre=(30, 20), radius: int = 6, shift=(3.0, -2.0), noise: float = 0.05):
    """A disc moving by ``shift`` over a background with small flow noise; returns (flow, disc mask)."""
    yy, xx = np.mgrid[:size, :size]
    disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    flow = np.random.default_rng(0).normal(0, noise, (2, size, size)).astype(np.float32)
    flow[0][disc], flow[1][disc] = shift
    return flow, disc


def test_foreground_pokes_sit_on_moving_pixels_with_their_displacement():
    flow, disc = disc_flow()
    rng = np.random.default_rng(1)
    params = PokeParams(background_prob=0.0)
    counts = np.zeros(6, int)
    for _ in range(300):
        pokes = sample_pokes(flow, rng, params)
        assert 1 <= pokes.n <= 5 and not pokes.background
        counts[pokes.n] += 1
        pts = pokes.points
        assert pts.shape == (5, 4) and pts.dtype == np.float32 and (pts[pokes.n :] == 0).all()
        for x, y, dx, dy in pts[: pokes.n]:
            assert disc[int(y), int(x)]
            np.testing.assert_allclose([dx, dy], [3.0, -2.0])
        assert len({(x, y) for x, y in pts[: pokes.n, :2]}) == pokes.n  # distinct pixels
        np.testing.assert_array_equal(pokes.poke, draw_patches(pts[: pokes.n], (48, 48), 5))
    assert counts[0] == 0 and counts[1:].min() > 35  # uniform in 1..5 (60 expected each)


def test_poke_map_is_a_5x5_patch_of_the_displacement_clipped_at_borders():
    poke = draw_patches(np.array([[10, 7, 1.5, -0.5], [0, 0, 2.0, 3.0]], np.float32), (16, 16), 5)
    assert poke.shape == (2, 16, 16)
    assert (poke[0, 5:10, 8:13] == 1.5).all() and (poke[1, 5:10, 8:13] == -0.5).all()
    assert (poke[0, :3, :3] == 2.0).all() and (poke[1, :3, :3] == 3.0).all()
    assert np.count_nonzero(poke[0]) == 25 + 9


def test_background_pokes_use_static_pixels_away_from_motion_and_foreground_displacements():
    flow, disc = disc_flow()
    rng = np.random.default_rng(2)
    n_background = 0
    for _ in range(1200):
        pokes = sample_pokes(flow, rng, PokeParams())
        if not pokes.background:
            continue
        n_background += 1
        for x, y, dx, dy in pokes.points[: pokes.n]:
            x, y = int(x), int(y)
            assert not disc[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].any()  # patch off the disc
            np.testing.assert_allclose([dx, dy], [3.0, -2.0])  # displacement drawn from the foreground
    assert 70 <= n_background <= 130  # 1/12 of 1200 = 100


def test_thresholds_fall_back_from_two_std_to_mean():
    norm = np.zeros((10, 10), np.float32)
    norm[:5] = 1.0  # half moving equally: nothing is above mean + std, so the mean decides
    assert (foreground_candidates(norm) == (norm > 0.5)).all()
    spike = np.zeros((10, 10), np.float32)
    spike[0, 0] = 1.0
    assert foreground_candidates(spike).sum() == 1  # mean + 2 std picks the single moving pixel


def test_still_clip_gives_zero_displacement_pokes_anywhere():
    flow = np.zeros((2, 12, 12), np.float32)
    assert normalised_magnitude(flow).max() == 0
    pokes = sample_pokes(flow, np.random.default_rng(0), PokeParams(background_prob=0.0))
    assert pokes.n >= 1 and not pokes.poke.any()
    assert background_candidates(normalised_magnitude(flow), 5).all()


def test_foreground_filter_restricts_pokes_to_the_object_mask():
    flow, disc = disc_flow(noise=0.0)
    flow[:, 40:44, 5:9] = 4.0  # a moving distractor outside the object
    mask = disc.astype(np.uint8)
    rng = np.random.default_rng(3)
    on_object = []
    for _ in range(200):
        pokes = sample_pokes(flow, rng, PokeParams(background_prob=0.0, foreground_filter=True), mask)
        on_object += [bool(disc[int(y), int(x)]) for x, y in pokes.points[: pokes.n, :2]]
    assert all(on_object)


def synthetic_samples(tmp_path_factory):
    dirs = synthetic_pipeline(tmp_path_factory)
    for shard in sorted(dirs["shards"].glob("*.tar")):
        for sample in read_tar(shard).values():
            gt_flow = npy_load(sample["gt_flow.npy"]).astype(np.float32)
            if np.linalg.norm(gt_flow, axis=0).max() >= 1.0:  # clips in which the object moves
                flow = npy_load(sample["flow.npy"]).astype(np.float32)
                frames = npy_load(sample["frames.npy"])
                yield json.loads(sample["meta.json"]), flow, gt_flow, npy_load(sample["mask.npy"]), frames


def poke_statistics(samples, use_gt_flow: bool, params: PokeParams, draws: int = 40, evidence: bool = False):
    """Share of foreground pokes on moving object pixels and of background pokes on static pixels.

    GT flow is computed from the GT part masks and is exactly zero off the object, so at stored resolution
    a non-zero GT displacement marks a pixel covered by a moving object part. ``evidence``: pass the
    clips' motion evidence, as the loader does."""
    fg, bg = [], []
    for meta, flow, gt_flow, mask, frames in samples:
        moving = np.linalg.norm(gt_flow, axis=0) > 0.05
        rng = np.random.default_rng(len(meta["clip_id"]))
        ev = motion_evidence(frames) if evidence else None
        for _ in range(draws):
            pokes = sample_pokes(gt_flow if use_gt_flow else flow, rng, params, mask, ev)
            hits = [moving[int(y), int(x)] != pokes.background for x, y in pokes.points[: pokes.n, :2]]
            (bg if pokes.background else fg).extend(hits)
    return float(np.mean(fg)), float(np.mean(bg)), len(fg), len(bg)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return list(synthetic_samples(tmp_path_factory))


def test_synthetic_pokes_from_gt_flow_land_on_moving_object_pixels(samples):
    fg, bg, n_fg, n_bg = poke_statistics(samples, use_gt_flow=True, params=PokeParams(background_prob=0.25))
    print(f"GT flow: {fg:.1%} of foreground pokes on moving object pixels, {bg:.1%} background pokes static")
    assert n_fg > 200 and n_bg > 50
    assert fg >= 0.95 and bg >= 0.95


def test_synthetic_pokes_with_foreground_filter_land_on_moving_object_pixels(samples):
    params = PokeParams(background_prob=0.25, foreground_filter=True)
    fg, bg, _, _ = poke_statistics(samples, use_gt_flow=False, params=params)
    print(f"DIS flow + GT mask filter: {fg:.1%} foreground pokes on moving object pixels, {bg:.1%} static")
    assert fg >= 0.95 and bg >= 0.95


def test_synthetic_pokes_from_estimated_flow_concentrate_on_the_object(samples):
    """Without the GT mask, DIS flow at 64 px smears thin moving parts into their surroundings, so fewer
    pokes hit moving object pixels; they still do several times more often than chance."""
    fg, bg, _, _ = poke_statistics(samples, use_gt_flow=False, params=PokeParams(background_prob=0.25))
    object_share = np.mean([(np.linalg.norm(g, axis=0) > 0.05).mean() for _, _, g, _, _ in samples])
    print(f"DIS flow: {fg:.1%} foreground pokes on moving object pixels (object share {object_share:.1%}), "
          f"{bg:.1%} background pokes static")
    assert fg >= 4 * object_share and bg >= 0.95


def test_synthetic_pokes_with_motion_evidence_and_no_mask(samples):
    """The loader's default without ground truth: DIS flow plus the clip's motion evidence. It must not
    do worse than the flow alone where the flow is good (beyond one binomial standard error of the shares:
    both are measured on the same few hundred pokes), and it keeps background pokes static."""
    params = PokeParams(background_prob=0.25)
    flow_fg, flow_bg, _, _ = poke_statistics(samples, use_gt_flow=False, params=params)
    fg, bg, n_fg, n_bg = poke_statistics(samples, use_gt_flow=False, params=params, evidence=True)
    print(f"DIS flow: {flow_fg:.1%} foreground pokes on moving object pixels -> {fg:.1%} with motion "
          f"evidence; background pokes static {flow_bg:.1%} -> {bg:.1%} ({n_fg} fg, {n_bg} bg)")
    assert fg >= flow_fg - 0.5 / np.sqrt(n_fg) and bg >= 0.95
