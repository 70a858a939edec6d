"""Kinematics, part geometry and procedural objects of the synthetic world, checked against brute force."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ipoke.data.synthetic import objects, shapes
from ipoke.data.synthetic.kinematics import forward, mass_matrix, point_jacobian

SIZE = 128


@pytest.fixture(scope="module", params=objects.FAMILIES)
def model(request):
    return objects.make_object(request.param, np.random.default_rng(3), SIZE)


def test_point_jacobian_matches_finite_differences(model):
    sk = model.skeleton
    rng = np.random.default_rng(0)
    q = sk.clamp(sk.rest + rng.normal(0, 0.2, sk.n_parts))
    part = sk.n_parts - 1
    local = np.array([sk.lengths[part] * 0.7, 0.5])
    jac = point_jacobian(sk, forward(sk, q), part, forward(sk, q).to_world(part, local))
    eps = 1e-6

    def point(qq):
        return forward(sk, qq).to_world(part, local)

    numeric = np.stack(
        [(point(q + eps * e) - point(q - eps * e)) / (2 * eps) for e in np.eye(sk.n_parts)], axis=1
    )
    np.testing.assert_allclose(jac, numeric, atol=1e-5)


def test_mass_matrix_gives_the_kinetic_energy_of_the_parts(model):
    """0.5 v^T M v equals the sum over parts of translational plus rotational energy."""
    sk = model.skeleton
    rng = np.random.default_rng(1)
    q, v = sk.rest.copy(), rng.normal(0, 1, sk.n_parts)
    eps = 1e-6
    p0, p1 = forward(sk, q - eps * v), forward(sk, q + eps * v)
    parts = np.arange(sk.n_parts)
    com_velocity = (p1.to_world(parts, sk.centroids) - p0.to_world(parts, sk.centroids)) / (2 * eps)
    omega = (p1.angles - p0.angles) / (2 * eps)
    brute = 0.5 * (sk.masses * (com_velocity**2).sum(1) + sk.inertias * omega**2).sum()
    m = mass_matrix(sk, forward(sk, q))
    np.testing.assert_allclose(0.5 * v @ m @ v, brute, rtol=1e-6)
    np.testing.assert_allclose(m, m.T, atol=1e-9)
    assert np.linalg.eigvalsh(m).min() > 0


@pytest.mark.parametrize("outline", [shapes.capsule(30, 10, 6), shapes.leaf(25, 12), shapes.disc(8, 7)])
def test_mass_properties_match_a_rasterised_polygon(outline):
    scale, pad = 20, 20
    lo = outline.min(0)
    pts = ((outline - lo) * scale + pad).round().astype(np.int32)
    h, w = (pts.max(0) + pad)[::-1]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    ys, xs = np.nonzero(mask)
    local = np.stack([xs, ys], -1) / scale + lo - pad / scale
    area = len(xs) / scale**2
    centroid = local.mean(0)
    inertia = ((local - centroid) ** 2).sum(1).mean() * area
    mass, c, i = shapes.mass_properties(outline)
    assert mass == pytest.approx(area, rel=0.02)
    np.testing.assert_allclose(c, centroid, atol=0.05)
    assert i == pytest.approx(inertia, rel=0.03)


@pytest.mark.parametrize("family", objects.FAMILIES)
def test_objects_are_valid_reproducible_and_varied(family):
    made = [objects.make_object(family, np.random.default_rng(s), SIZE) for s in range(6)]
    again = objects.make_object(family, np.random.default_rng(0), SIZE)
    np.testing.assert_array_equal(made[0].skeleton.offsets, again.skeleton.offsets)
    assert (
        len({m.skeleton.n_parts for m in made} | {round(float(m.skeleton.lengths.sum()), 3) for m in made})
        > 3
    )
    for m in made:
        sk = m.skeleton
        assert m.family == family
        assert sk.parents[0] == -1 and (sk.parents[1:] < np.arange(1, sk.n_parts)).all()
        assert (sk.lower < 0).all() and (sk.upper > 0).all()
        assert sorted(m.depth.tolist()) == list(range(sk.n_parts))
        lo, hi = objects.extent(m, sk.rest)
        assert (lo >= 0).all() and (hi < SIZE).all()
        assert objects.crossings(m, sk.rest) == 0
    if family == "puppet":
        names = made[0].names
        for part in ("pelvis", "torso", "head"):
            assert names.count(part) == 1
        for part in ("upper_arm", "forearm", "thigh", "shin"):
            assert names.count(part) == 2
    else:
        assert {"trunk", "branch", "leaf"} <= set(made[0].names)


def test_crossing_detector_sees_folded_limbs():
    """The self-penetration check itself: folding a puppet's forearm back across its torso is caught."""
    m = objects.make_object("puppet", np.random.default_rng(0), SIZE)
    q = m.skeleton.rest.copy()
    ua = m.names.index("upper_arm")
    q[ua] += np.pi * 0.85 * (1 if q[ua] < np.pi else -1)  # swing the arm in across the body
    assert objects.crossings(m, q) > 0


@pytest.mark.parametrize("family", objects.FAMILIES)
def test_thickness_widens_the_moving_parts(family):
    """The same draw with ``thickness`` 1.5 covers more pixels than with 1.0 and has the same skeleton."""

    def area(m):
        return sum(cv2.contourArea(o.astype(np.float32)) for o in m.outlines)

    thin = objects.MAKERS[family](np.random.default_rng(5), SIZE, thickness=1.0)
    thick = objects.MAKERS[family](np.random.default_rng(5), SIZE, thickness=1.5)
    assert area(thick) > 1.2 * area(thin)
    np.testing.assert_array_equal(thick.skeleton.parents, thin.skeleton.parents)


def test_background_texture_scales_the_fine_detail():
    """``texture`` 0 leaves a smooth wall; the default has high-frequency detail; both are valid images."""
    from ipoke.data.synthetic.textures import background

    def detail(img):
        return float(np.abs(img - cv2.GaussianBlur(img, (0, 0), 2.0)).mean())

    smooth = background(np.random.default_rng(1), SIZE, 110.0, texture=0.0)
    rough = background(np.random.default_rng(1), SIZE, 110.0, texture=1.0)
    assert smooth.shape == rough.shape == (SIZE, SIZE, 3)
    assert 0 <= smooth.min() and smooth.max() <= 1
    assert detail(rough) > 2 * detail(smooth)
