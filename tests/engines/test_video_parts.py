"""The motion-video engine's parts: camera words, sizes, grades, timing, sound, progress."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hyperlocal.engines.builtin.video.camera import IDENTITY, MOVES, Pose, choose_move
from hyperlocal.engines.builtin.video.edit import Timing, choose_timing
from hyperlocal.engines.builtin.video.grades import apply_grades, choose_grades
from hyperlocal.engines.builtin.video.layers import build_layers, inpaint, render
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.engines.media.soundtrack import RATE, AudioTrack, ambience, loudness
from hyperlocal.engines.media.video_spec import frame_size, seconds
from hyperlocal.errors import GenerationError


@pytest.mark.parametrize(
    ("prompt", "move"),
    [
        ("a cat sleeping on a sofa", "ken-burns"),
        ("camera pans slowly to the left", "pan-left"),
        ("Pan right across the skyline", "pan-right"),
        ("tracking shot moving right", "pan-right"),
        ("slow zoom in on her eyes", "zoom-in"),
        ("close-up of a flower", "zoom-in"),
        ("zoom out to reveal the valley", "zoom-out"),
        ("dolly in toward the door", "dolly-in"),
        ("the camera pulls back from the crowd", "dolly-out"),
        ("tilt up to the stars", "tilt-up"),
        ("crane down to the street", "tilt-down"),
        ("orbit around the statue", "orbit"),
    ],
)
def test_prompt_words_choose_the_camera_move(prompt: str, move: str) -> None:
    assert choose_move(prompt).name == move


@pytest.mark.parametrize("move", sorted(MOVES))
def test_every_move_stays_inside_the_source(move: str) -> None:
    for t in np.linspace(0, 1, 11):
        pose = MOVES[move].pose(float(t))
        assert pose.zoom >= 1.0 - 1e-9
        assert abs(pose.x) <= 1 + 1e-9 and abs(pose.y) <= 1 + 1e-9


def test_moves_start_at_the_input_image_except_zoom_outs() -> None:
    starts = {name for name, move in MOVES.items() if move.pose(0.0) == IDENTITY}
    assert starts == set(MOVES) - {"zoom-out", "dolly-out"}
    assert MOVES["zoom-out"].pose(1.0) == IDENTITY


def test_the_foreground_outruns_the_background() -> None:
    background, foreground = MOVES["pan-right"].layer_poses(1.0)
    assert foreground.x > background.x > 0
    assert foreground.zoom > background.zoom
    orbit_back, orbit_front = MOVES["orbit"].layer_poses(1.0)
    assert orbit_back.x > 0 > orbit_front.x


@pytest.mark.parametrize(
    ("params", "source", "size"),
    [
        ({}, 16 / 9, (1280, 720)),
        ({"resolution": "1080p", "aspect_ratio": "9:16"}, 1.0, (1080, 1920)),
        ({"resolution": "480p"}, 4 / 3, (640, 480)),
        ({"resolution": "480p"}, 10.0, (1120, 480)),  # a panorama is cropped to 21:9
        ({"aspect_ratio": "auto"}, 1.0, (720, 720)),
    ],
)
def test_frame_size(params: dict[str, str], source: float, size: tuple[int, int]) -> None:
    assert frame_size(params, source) == size


@pytest.mark.parametrize(
    "params", [{"resolution": "4k"}, {"aspect_ratio": "wide"}, {"aspect_ratio": "0:1"}]
)
def test_bad_sizes_are_generation_errors(params: dict[str, str]) -> None:
    with pytest.raises(GenerationError):
        frame_size(params, 1.0)


def test_seconds_defaults_caps_and_refuses() -> None:
    assert seconds({}) == 5.0
    assert seconds({"duration": 8}) == 8.0
    assert seconds({"duration": 1000}) == 60.0
    with pytest.raises(GenerationError):
        seconds({"duration": -1})


@pytest.mark.parametrize(
    ("prompt", "names"),
    [
        ("film noir", ["noir"]),
        ("make it black and white", ["black-and-white"]),
        ("vintage sepia look, warm", ["sepia", "warm"]),
        ("anime style, vivid colours", ["cartoon", "vivid"]),
        ("add a dragon", []),
    ],
)
def test_grade_words(prompt: str, names: list[str]) -> None:
    assert [grade.name for grade in choose_grades(prompt)] == names


def test_every_grade_changes_a_picture() -> None:
    image = Image.new("RGB", (64, 48), (40, 110, 170))
    ImageDraw.Draw(image).ellipse((10, 10, 40, 40), fill=(230, 200, 60))
    from hyperlocal.engines.builtin.video.grades import GRADES

    for grade in GRADES:
        graded = apply_grades(image, [grade])
        assert graded.size == image.size and graded.mode == "RGB"
        diff = np.abs(np.asarray(graded, np.int16) - np.asarray(image, np.int16)).mean()
        assert diff > 2, grade.name


@pytest.mark.parametrize(
    ("prompt", "timing"),
    [
        ("play it backwards", Timing(reverse=True)),
        ("slow motion", Timing(speed=0.5)),
        ("reverse it in slow-mo", Timing(reverse=True, speed=0.5)),
        ("timelapse", Timing(speed=2.0)),
        ("make it blue", Timing()),
    ],
)
def test_timing_words(prompt: str, timing: Timing) -> None:
    assert choose_timing(prompt) == timing


def test_loudness_follows_the_bursts() -> None:
    t = np.arange(2 * RATE) / RATE
    bursts = (t % 0.5 < 0.25).astype(np.float32)  # on for a quarter second, off for one
    track = AudioTrack((0.5 * np.sin(2 * np.pi * 200 * t) * bursts)[None].astype(np.float32))
    level = loudness(track, fps=24, frames=48)
    assert level.shape == (48,)
    assert level[4] > 0.8  # inside the first burst
    assert level[11] < level[4] - 0.3  # after a quarter second of silence


def test_ambience_is_quiet_stereo_of_the_asked_length() -> None:
    track = ambience(1.5, "seed")
    assert track.channels == 2
    assert track.seconds == pytest.approx(1.5)
    assert 0.01 < float(np.abs(track.samples).max()) <= 0.06
    assert np.array_equal(track.samples, ambience(1.5, "seed").samples)


def test_inpaint_fills_the_hole_from_its_surroundings() -> None:
    image = Image.new("RGB", (120, 80), (20, 140, 60))
    ImageDraw.Draw(image).rectangle((40, 20, 80, 60), fill=(255, 0, 255))
    hole = np.zeros((80, 120), bool)
    hole[18:63, 38:83] = True
    filled = np.asarray(inpaint(image, hole, hole), np.int16)
    assert np.abs(filled[40, 60] - (20, 140, 60)).max() < 12
    assert np.array_equal(filled[5, 5], (20, 140, 60))  # untouched outside the fill


def test_layers_find_the_subject_and_render_the_identity_pose_unchanged() -> None:
    image = Image.new("RGB", (320, 180), (200, 210, 230))
    ImageDraw.Draw(image).ellipse((120, 40, 200, 150), fill=(200, 40, 40))
    layers = build_layers(image, (320, 180))
    assert layers.method == "2-layer parallax"
    frame = render(layers, IDENTITY, IDENTITY)
    diff = np.abs(np.asarray(frame, np.int16) - np.asarray(image, np.int16))
    assert diff.mean() < 2
    moved = render(layers, Pose(1.2, 1.0, 0.0), Pose(1.3, 1.4, 0.0))
    assert np.abs(np.asarray(moved, np.int16) - np.asarray(image, np.int16)).mean() > 5


def test_a_flat_picture_moves_as_one_layer() -> None:
    layers = build_layers(Image.new("RGB", (200, 100), (90, 90, 90)), (200, 100))
    assert layers.method == "single layer"


async def test_progress_reaches_the_callback_in_order() -> None:
    seen: list[float] = []

    async def progress(fraction: float, message: str | None) -> None:
        seen.append(fraction)

    def work(report: Report) -> str:
        for step in range(5):
            report(step / 4, "working")
            threading.Event().wait(0.1)
        return "done"

    assert await run_reporting(work, progress) == "done"
    assert seen == sorted(seen) and seen[-1] == 1.0


async def test_cancelling_stops_the_worker_thread() -> None:
    stopped = threading.Event()

    async def progress(fraction: float, message: str | None) -> None:
        return None

    def work(report: Report) -> None:
        try:
            for _ in range(400):
                report(0.5, "spinning")
                threading.Event().wait(0.01)
        except Exception:
            stopped.set()
            raise

    task = asyncio.ensure_future(run_reporting(work, progress))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped.is_set()  # the task ends only once its thread has stopped
