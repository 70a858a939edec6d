"""Pokes on what moves: the realistic failure case of weight-free flow, built from scratch.

A textured figure translates in front of a flat wall, filmed with camera noise (std 3 grey levels per
channel); DIS, as ``estimate_flow`` runs it (128 px, chained), puts flow as large as the figure's on the
blank wall, so the authors' magnitude rule alone picks wall pixels. With the motion evidence of
:mod:`ipoke.data.motion_evidence`, foreground pokes land on the figure and background pokes keep off it.
``pytest -s`` prints the comparison of the evidence options.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ipoke.data.flow import FlowParams, clip_flows, make_estimator
from ipoke.data.loader import LoaderParams, make_example
from ipoke.data.motion_evidence import grey, motion_evidence, noise_level
from ipoke.data.pokes import PokeParams, foreground_candidates, normalised_magnitude, sample_pokes
from ipoke.data.shards import npy_bytes

SEEDS = range(4)


def figure_on_a_wall(seed: int, size: int = 64, n: int = 11, noise: float = 3.0, shift=(0.7, 0.3)):
    """uint8 (n, size, size, 3) frames of a textured body-and-head figure drifting ``shift`` px per frame
    over a flat wall; returns the frames and the figure's masks (n, size, size)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.float32), (0, 0), 1.0)
    texture = 60 + (texture - texture.mean()) * 2.2
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cx, cy = 24 + rng.uniform(-3, 3), 36.0
    frames, masks = [], []
    for t in range(n):
        dx, dy = shift[0] * t, shift[1] * t
        body = ((xx - cx - dx) / 7) ** 2 + ((yy - cy - dy) / 14) ** 2 <= 1
        head = ((xx - cx - dx) / 4.5) ** 2 + ((yy - cy + 19 - dy) / 4.5) ** 2 <= 1
        figure = body | head
        moved = cv2.warpAffine(texture, np.float32([[1, 0, dx], [0, 1, dy]]), (size, size),
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        image = np.full((size, size, 3), 205.0, np.float32)
        image[figure] = moved[figure]
        frames.append(np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8))
        masks.append(figure)
    return np.stack(frames), np.stack(masks)


def dis(frames: np.ndarray, backward: bool = False) -> np.ndarray:
    """Start->end flow as the ``estimate_flow`` stage computes it by default (DIS at 128 px, chained)."""
    params = FlowParams(method="dis", inference_size=128, chain=True, epe_methods={})
    video = frames[::-1] if backward else frames
    ends = np.array([len(frames) - 1])
    return clip_flows(make_estimator("dis", params), video, np.array([0]), ends, params)[0]


@pytest.fixture(scope="module")
def scenes():
    """(frames, masks, DIS flow) per seed."""
    out = []
    for seed in SEEDS:
        frames, masks = figure_on_a_wall(seed)
        out.append((frames, masks, dis(frames)))
    return out


def poke_shares(scenes, evidence: bool, draws: int = 300):
    """(share of foreground pokes on the figure in x0, share of background pokes whose patch touches the
    figure in any frame, counts)."""
    fg, bg = [], []
    params = PokeParams(background_prob=0.25)
    for frames, masks, flow in scenes:
        ev = motion_evidence(frames) if evidence else None
        swept = np.pad(masks.any(axis=0), 2)
        rng = np.random.default_rng(7)
        for _ in range(draws):
            pokes = sample_pokes(flow, rng, params, None, ev)
            for x, y in pokes.points[: pokes.n, :2].astype(int):
                if pokes.background:
                    bg.append(bool(swept[y : y + 5, x : x + 5].any()))
                else:
                    fg.append(bool(masks[0, y, x]))
    return float(np.mean(fg)), float(np.mean(bg)), len(fg), len(bg)


def test_pokes_land_on_the_moving_figure_not_on_the_wall(scenes):
    before_fg, before_bg, _, _ = poke_shares(scenes, evidence=False)
    after_fg, after_bg, n_fg, n_bg = poke_shares(scenes, evidence=True)
    print(f"\nfigure on a wall, DIS: foreground pokes on the figure {before_fg:.1%} -> {after_fg:.1%}; "
          f"background pokes touching the figure {before_bg:.1%} -> {after_bg:.1%} ({n_fg} fg, {n_bg} bg)")
    assert before_fg < 0.5  # the failure: the largest flow is on the wall
    assert after_fg >= 0.9
    assert n_bg > 100 and after_bg == 0.0


def candidate_share(masks, flow, restrict) -> float:
    cand = foreground_candidates(normalised_magnitude(flow), restrict)
    return float(masks[0][cand].mean())


def test_evidence_options_compared(scenes):
    """Share of foreground candidates on the figure for each kind of evidence (printed); the chosen one,
    changing and textured in a whole 3x3 neighbourhood, is the only one above 90%."""
    rows: dict[str, list[float]] = {}
    for frames, masks, flow in scenes:
        g = grey(frames)
        noise = noise_level(g)
        ev = motion_evidence(frames)
        blurred = np.stack([cv2.GaussianBlur(f, (3, 3), 0) for f in g])
        end_change = np.abs(blurred[-1] - blurred[0]) > max(6.0, 4.5 * np.sqrt(2) * 0.375 * noise)
        variance = g.std(axis=0) > 3 * noise
        back = dis(frames, backward=True)
        ys, xs = np.mgrid[: flow.shape[1], : flow.shape[2]].astype(np.float32)
        back_at = np.stack([cv2.remap(b, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR) for b in back])
        fb_error = np.linalg.norm(flow + back_at, axis=0)
        squares = np.linalg.norm(flow, axis=0) ** 2 + np.linalg.norm(back_at, axis=0) ** 2
        consistent = fb_error < 0.05 * squares + 0.5  # the usual occlusion check (Sundaram et al. 2010)
        options = {
            "flow magnitude only (authors)": None,
            "+ |x_T - x0| beyond noise": end_change,
            "+ temporal std beyond noise": variance,
            "+ any-frame change beyond noise": ev.changing,
            "+ texture in x0": ev.textured,
            "+ forward-backward consistency": consistent,
            "+ change and texture": ev.changing & ev.textured,
            "+ change and texture, 3x3 eroded (chosen)": ev.moving,
            "+ chosen and forward-backward": ev.moving & consistent,
        }
        for name, restrict in options.items():
            rows.setdefault(name, []).append(candidate_share(masks, flow, restrict))
    print("\nforeground candidates on the figure (mean over scenes):")
    for name, shares in rows.items():
        print(f"  {name:<45} {np.mean(shares):6.1%}")
    chosen = np.mean(rows["+ change and texture, 3x3 eroded (chosen)"])
    assert chosen >= 0.9
    assert np.mean(rows["flow magnitude only (authors)"]) < 0.5


def test_the_loader_draws_its_pokes_with_the_evidence(scenes):
    """``make_example`` computes the evidence from the clip's frames when ``loader.pokes.motion_evidence``."""
    frames, masks, flow = scenes[0]
    sample = {"meta.json": json.dumps({"clip_id": "wall@000000"}).encode(), "frames.npy": npy_bytes(frames),
              "flow.npy": npy_bytes(flow.astype(np.float16))}
    shares = {}
    for on in (True, False):
        params = LoaderParams(pokes=PokeParams(background_prob=0.0, motion_evidence=on))
        hits = []
        for epoch in range(40):
            example = make_example(sample, seed=0, epoch=epoch, params=params, train=True)
            points = example["poke_points"][: int(example["n_pokes"])].numpy().astype(int)
            hits += [bool(masks[0, y, x]) for x, y in points[:, :2]]
        shares[on] = np.mean(hits)
    assert shares[True] >= 0.9 > 0.5 > shares[False]
