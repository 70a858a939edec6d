"""The sampling API and ``ipoke sample``: pipeline directory round trip, seeded sampling, image and poke
geometry, kinematics transfer through the whole pipeline, image-only variant, errors, the CLI's videos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_cinn import SIZE, TINY_ENCODERS, make_batch, tiny_cinn_profile, tiny_parts

from ipoke.cli import main as cli_main
from ipoke.errors import IpokeError
from ipoke.metrics.videos import float_to_uint8
from ipoke.sampling import CINN_FILE, CONFIG_FILE, PokePipeline, model_view
from ipoke.train.cinn import CINNModule


def build_pipeline(poke_conditioning: bool = True) -> PokePipeline:
    """A tiny pipeline of random networks, ActNorms initialised on a batch (a test fixture, not a model)."""
    ae, conditioner = tiny_parts(poke_conditioning)
    profile = tiny_cinn_profile(poke_conditioning=poke_conditioning)
    module = CINNModule(profile, ae, conditioner, TINY_ENCODERS, "synthetic", "demo")
    module.cinn(*module.encode(make_batch(8)))
    return module.pipeline()


def gradient_image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pipeline") / "pipeline"
    pipeline = build_pipeline()
    frames = [
        ("00-clip_a", gradient_image(SIZE, SIZE)),
        ("01-clip_b", gradient_image(SIZE, SIZE)[::-1].copy()),
    ]
    pipeline.save(directory, frames)
    return pipeline, directory, frames


def test_save_load_round_trip_gives_identical_seeded_samples(saved):
    pipeline, directory, frames = saved
    loaded = PokePipeline.load(directory, device="cpu")
    assert (loaded.size, loaded.n_frames, loaded.max_pokes, loaded.poke_conditioned) == (SIZE, 11, 5, True)
    assert loaded.device == torch.device("cpu")
    batch = make_batch(2)
    x0, poke = batch["video"][:, 0], batch["poke"]
    first = loaded.sample_batch(x0, poke, 3, seed=7)
    assert first.shape == (2, 3, 11, 3, SIZE, SIZE)
    assert torch.equal(first, loaded.sample_batch(x0, poke, 3, seed=7))
    assert torch.equal(first, pipeline.sample_batch(x0, poke, 3, seed=7))
    assert not torch.equal(first, loaded.sample_batch(x0, poke, 3, seed=8))
    assert torch.equal(first[:, :, 0], x0[:, None].expand(2, 3, 3, SIZE, SIZE))  # frame 0 is x0
    assert first[:, :, 1:].abs().max() <= 1
    assert not torch.equal(first[0, 0], first[0, 1])  # samples differ
    for (name, pixels), (want_name, want) in zip(loaded.test_frames(), frames, strict=True):
        assert name == want_name and np.array_equal(pixels, want)


def test_temperature_zero_gives_the_mode_for_every_seed(saved):
    pipeline, _, _ = saved
    batch = make_batch(1)
    a = pipeline.sample_batch(batch["video"][:, 0], batch["poke"], 2, seed=1, temperature=0.0)
    assert torch.equal(a[0, 0], a[0, 1])


def test_residual_then_render_reproduces_the_autoencoder_reconstruction(saved):
    pipeline, _, _ = saved
    batch = make_batch(3)
    video, poke = batch["video"], batch["poke"]
    residual = pipeline.residual(video, poke)
    assert residual.shape == (3, 4, 8, 8)
    rendered = pipeline.render(video[:, 0], poke, residual)
    reconstruction = pipeline.reconstruct(video)
    with torch.no_grad():
        z = pipeline.ae.encode(video)
        by_hand = torch.cat([video[:, :1], pipeline.ae.decode(z, video[:, 0])], dim=1)
        z_back = pipeline.cinn.reverse(residual, pipeline.conditioner(video[:, 0], poke))
    assert torch.equal(reconstruction, by_hand)
    assert torch.allclose(z_back, z, atol=1e-4)
    assert torch.allclose(rendered, reconstruction, atol=1e-4)
    # Transfer: the same residual animates other start frames.
    other = pipeline.render(video.flip(0)[:, 0], poke, residual)
    assert other.shape == video.shape and torch.equal(other[:, 0], video.flip(0)[:, 0])


def test_numpy_sampling_crops_resizes_and_maps_pokes(saved):
    pipeline, _, _ = saved
    image = gradient_image(48, 64)  # centre crop: columns 8..55, then 48 -> 32 px
    square, scale, corner = model_view(image, SIZE)
    assert (scale, corner) == (pytest.approx(SIZE / 48), (8, 0))
    pokes = [(20, 24, 6, -3)]
    model_pokes = pipeline.model_pokes(image, pokes)
    assert model_pokes[0].tolist() == pytest.approx([8.0, 16.0, 4.0, -2.0])
    poke_map = pipeline.poke_map(model_pokes)
    assert poke_map[:, 16, 8].tolist() == [4.0, -2.0] and int((poke_map[0] != 0).sum()) == 25
    videos = pipeline.sample(image, pokes, 2, seed=3)
    assert videos.shape == (2, 11, SIZE, SIZE, 3) and videos.dtype == np.uint8
    assert np.array_equal(videos[0, 0], square)
    batch = pipeline.sample_batch(
        torch.from_numpy(square).permute(2, 0, 1)[None] / 127.5 - 1, poke_map[None], 2, 3
    )
    assert np.array_equal(videos, float_to_uint8(batch[0]))
    assert pipeline.sample(image, [], 1, seed=3).shape == (1, 11, SIZE, SIZE, 3)  # no poke


def test_bad_pokes_and_images_are_refused(saved):
    pipeline, _, _ = saved
    image = gradient_image(SIZE, SIZE)
    with pytest.raises(IpokeError, match="6 pokes given; this model takes at most 5"):
        pipeline.sample(image, [(1, 1, 1, 1)] * 6, 1, 0)
    with pytest.raises(IpokeError) as info:  # left of the centre crop: said in the image's own pixels
        pipeline.sample(gradient_image(32, 64), [(2, 5, 1, 1)], 1, 0)
    assert str(info.value) == (
        "poke 1: start (2, 5) lies outside the part of the image the model sees (image 64x32: using its "
        "centre 32x32 square (x 16..47); x 16..47, y 0..31)"
    )
    with pytest.raises(IpokeError, match=r"poke 2: target \(20, 40\) lies outside"):
        pipeline.sample(gradient_image(48, 32), [(5, 20, 1, 1), (10, 30, 10, 10)], 1, 0)
    with pytest.raises(IpokeError, match="uint8 RGB"):
        pipeline.sample(image.astype(np.float32), [], 1, 0)
    with pytest.raises(ValueError, match="poke map must be"):
        pipeline.sample_batch(torch.zeros(1, 3, SIZE, SIZE), torch.zeros(1, 2, 8, 8), 1, 0)


def test_image_only_pipeline_ignores_pokes(tmp_path):
    pipeline = build_pipeline(poke_conditioning=False)
    pipeline.save(tmp_path / "pipeline")
    loaded = PokePipeline.load(tmp_path / "pipeline", device="cpu")
    assert not loaded.poke_conditioned and loaded.conditioner.poke_encoder is None
    image = gradient_image(SIZE, SIZE)
    assert np.array_equal(loaded.sample(image, [(5, 5, 3, 3)], 2, 0), loaded.sample(image, [], 2, 0))
    assert loaded.test_frames() == []


def test_loading_names_what_is_missing_or_inconsistent(saved, tmp_path):
    _, directory, _ = saved
    with pytest.raises(IpokeError, match="no trained pipeline here"):
        PokePipeline.load(tmp_path / "nothing")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    (broken / CINN_FILE).unlink()
    with pytest.raises(IpokeError, match=f"{CINN_FILE}: weights file not found"):
        PokePipeline.load(broken)
    shutil.copy(directory / CINN_FILE, broken / CINN_FILE)
    config = json.loads((broken / CONFIG_FILE).read_text())
    config["cinn"]["coupling_hidden"] = 16
    (broken / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(IpokeError, match="cinn.pt: does not match"):
        PokePipeline.load(broken)
    config["cinn"]["coupling_hidden"], config["n_frames"] = 8, 12
    (broken / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(IpokeError, match="parts disagree with config.json"):
        PokePipeline.load(broken)
    (broken / CONFIG_FILE).write_text("{}")
    with pytest.raises(IpokeError, match="config.json: invalid config"):
        PokePipeline.load(broken)


# ------------------------------------------------------------------------------------------------ CLI


def read_gif(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def test_cli_writes_a_gif_of_the_samples_with_the_pokes_drawn(saved, tmp_path):
    _, directory, _ = saved
    image = tmp_path / "start.png"
    Image.fromarray(gradient_image(SIZE, SIZE)).save(image)
    out = tmp_path / "samples.gif"
    args = ["sample", "--image", str(image), "--poke", "10,12,8,-6", "--n", "3", "--out", str(out)]
    assert cli_main([*args, "--model", str(directory), "--display-size", "64"]) == 0
    frames = read_gif(out)
    assert len(frames) == 11 and frames[0].shape == (64, 3 * 64, 3)
    # The target dot of the first poke colour sits at (10 + 8, 12 - 6) * 2 in every sample.
    for k in range(3):
        r, g, b = (int(v) for v in frames[5][2 * 6, k * 64 + 2 * 18])
        assert r > 180 and g < 120 and b < 120


def test_cli_states_the_crop_and_checks_pokes_in_the_image_pixels(saved, tmp_path, capsys):
    _, directory, _ = saved
    image = tmp_path / "wide.png"
    Image.fromarray(gradient_image(128, 200)).save(image)
    base = ["sample", "--image", str(image), "--model", str(directory), "--n", "1"]
    assert cli_main([*base, "--poke", "100,64,10,0", "--out", str(tmp_path / "ok.gif")]) == 0
    assert f"{image}: image 200x128: using its centre 128x128 square (x 36..163)" in capsys.readouterr().out
    assert cli_main([*base, "--poke", "20,64,10,0", "--out", str(tmp_path / "no.gif")]) == 2
    err = capsys.readouterr().err
    assert "poke 1: start (20, 64) lies outside the part of the image the model sees" in err
    assert "x 36..163, y 0..127" in err


def test_cli_writes_mp4_and_transfers_kinematics(saved, tmp_path):
    from tiny_videos import write_video

    _, directory, _ = saved
    image = tmp_path / "start.png"
    Image.fromarray(gradient_image(40, 40)).save(image)
    source = write_video(tmp_path / "source.mp4", n_frames=12, width=64, height=32)
    out = tmp_path / "transfer.mp4"
    args = ["sample", "--image", str(image), "--transfer-from", str(source), "--poke", "20,16,4,0"]
    assert cli_main([*args, "--out", str(out), "--model", str(directory), "--display-size", "32"]) == 0
    import decord

    video = decord.VideoReader(str(out))
    assert len(video) == 11 and video[0].shape == (32, 3 * 32, 3)  # source | transfer | sample


def test_cli_reports_bad_input_as_one_line(saved, tmp_path, capsys):
    _, directory, _ = saved
    image = tmp_path / "start.png"
    Image.fromarray(gradient_image(SIZE, SIZE)).save(image)
    base = ["sample", "--image", str(image), "--model", str(directory)]
    assert cli_main([*base, "--out", str(tmp_path / "x.avi")]) == 2
    assert "unknown output format" in capsys.readouterr().err
    assert cli_main([*base, "--out", str(tmp_path / "x.gif"), "--image", str(tmp_path / "none.png")]) == 2
    assert "none.png: no such image" in capsys.readouterr().err
    short = tmp_path / "short.mp4"
    from tiny_videos import write_video

    write_video(short, n_frames=4, width=64)
    assert cli_main([*base, "--out", str(tmp_path / "x.gif"), "--transfer-from", str(short)]) == 2
    assert "the transfer needs 11" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main([*base, "--out", str(tmp_path / "x.gif"), "--poke", "1,2,3"])
