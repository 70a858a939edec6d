"""Poke arrows drawn on frames: where they land, their colours, and what they leave alone."""

from __future__ import annotations

import numpy as np
import pytest

from ipoke.viz import POKE_COLORS, draw_pokes, hex_color, poke_color


def grey(shape=(64, 64)) -> np.ndarray:
    return np.full((*shape, 3), 128, np.uint8)


def test_arrow_runs_from_start_to_a_target_dot_in_the_poke_colour():
    frame = grey()
    drawn = draw_pokes(frame, [(10, 20, 30, 0)])
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    assert (frame == 128).all()  # the input is not modified
    np.testing.assert_array_equal(drawn[20, 40], POKE_COLORS[0])  # target dot
    r, g, b = drawn[20, 25].astype(int)  # along the shaft: a 1 px line, anti-aliased into its dark outline
    assert r > g + 100 and g == b
    assert not (drawn[20, 10] == 128).all()  # the start is drawn too
    untouched = np.ones((64, 64), bool)
    untouched[14:27, 6:46] = False
    np.testing.assert_array_equal(drawn[untouched], frame[untouched])


def test_each_poke_gets_its_own_colour_and_every_frame_the_same_drawing():
    video = np.stack([grey(), grey() + 72, grey() - 68])[None]  # (1, 3, H, W, 3)
    pokes = [(5, 5, 10, 0), (5, 40, 0, 15), (40, 40, -10, -10)]
    drawn = draw_pokes(video, pokes)
    assert drawn.shape == video.shape
    for index, (x, y, dx, dy) in enumerate(pokes):
        for t in range(3):
            np.testing.assert_array_equal(drawn[0, t, round(y + dy), round(x + dx)], poke_color(index))
    one_by_one = np.stack([draw_pokes(frame, pokes) for frame in video[0]])
    np.testing.assert_array_equal(drawn[0], one_by_one)


def test_zero_length_poke_is_a_dot_and_colours_cycle():
    drawn = draw_pokes(grey(), [(32, 32, 0, 0)] * 6)
    np.testing.assert_array_equal(drawn[32, 32], poke_color(5))
    assert poke_color(5) == POKE_COLORS[0]
    assert (drawn[:20] == 128).all()


def test_lines_thicken_with_the_frame_size():
    small = (draw_pokes(grey((64, 64)), [(10, 32, 40, 0)]) != 128).any(-1)[:, 30].sum()
    large = (draw_pokes(grey((256, 256)), [(40, 128, 160, 0)]) != 128).any(-1)[:, 120].sum()
    assert large > small


def test_bad_frames_are_refused_and_colours_are_hex():
    with pytest.raises(ValueError, match="expected uint8 frames"):
        draw_pokes(np.zeros((8, 8, 3), np.float32), [(1, 1, 1, 1)])
    with pytest.raises(ValueError, match="expected uint8 frames"):
        draw_pokes(np.zeros((8, 8), np.uint8), [(1, 1, 1, 1)])
    assert hex_color((255, 64, 0)) == "#ff4000"
