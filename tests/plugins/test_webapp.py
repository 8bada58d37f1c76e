from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import handseg_core
from handseg_core import HandsegError, ImageError, Refinement, registry
from handseg_core.metrics import hand_iou
from tiny_model import HAND_RGB, hand_picture, write_red_model

pytest.importorskip("streamlit", reason="the web app needs Streamlit (pip install 'handseg[app]')")

import handseg_plugins.webapp as webapp  # noqa: E402
from handseg_plugins.webapp.process import process, zip_results  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from streamlit.testing.v1.element_tree import FileUploader  # noqa: E402

needs_uploads = pytest.mark.skipif(
    not hasattr(FileUploader, "upload"), reason="this Streamlit's AppTest cannot upload files (needs a newer Streamlit)"
)
TIMEOUT = 120


@pytest.fixture
def red_model(tmp_path, monkeypatch) -> Path:
    """tiny-red (red pixels are hands) in a HANDSEG_MODELS folder, so the app's menu offers it."""
    path = write_red_model(tmp_path / "models")
    monkeypatch.setenv("HANDSEG_MODELS", str(path.parent))
    return path


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def hand_fractions(at: AppTest) -> list[float]:
    """The hand cover of each shown photo, as the app states it."""
    return [float(c.value.split("cover ")[1].split("%")[0]) for c in at.caption if c.value.startswith("Hands cover")]


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(str(webapp.APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def with_photos(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.selectbox(key="model").set_value("tiny-red")
    uploader = at.file_uploader(key="photos")
    for name, data in files:
        uploader.upload(name, data, "image/png")
    return at.run()


def test_app_starts_with_the_registry_and_asks_for_photos(red_model, app):
    assert app.selectbox(key="model").options == [spec.name for spec in registry.models_for_menu()[0]]
    assert app.selectbox(key="model").value == registry.find(None).name
    assert app.slider(key="threshold").value == Refinement().threshold
    assert app.radio(key="background").options == ["Transparent", "White", "Colour", "Image"]
    assert any("Upload one or more photos" in i.value for i in app.info)
    assert not app.error and not app.download_button


def test_model_can_be_chosen_in_the_address(red_model):
    at = AppTest.from_file(str(webapp.APP), default_timeout=TIMEOUT)
    at.query_params["model"] = "tiny-red"
    at.run()
    assert not at.exception and at.selectbox(key="model").value == "tiny-red"


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd"])
def test_a_path_in_the_address_is_not_a_model(red_model, value, monkeypatch):
    at = AppTest.from_file(str(webapp.APP), default_timeout=TIMEOUT)
    at.query_params["model"] = value
    at.run()
    assert not at.exception and at.selectbox(key="model").value == registry.find(None).name
    with pytest.raises(HandsegError, match="refused"):
        registry.find_listed(value)


@needs_uploads
def test_photos_give_previews_and_downloads(red_model, app):
    rgb, truth = hand_picture(200, 150)
    with_photos(app, ("one.png", png_bytes(rgb)), ("two.png", png_bytes(hand_picture(120, 90, seed=1)[0])))
    assert not app.exception and not app.error
    assert [s.value for s in app.subheader] == ["one.png", "two.png"]
    assert len(app.image) == 6
    labels = [b.label for b in app.download_button]
    assert labels == ["Download mask (PNG)", "Download cut-out (PNG)"] * 2 + ["Download all (zip)"]
    assert hand_fractions(app)[0] == pytest.approx(100 * truth.mean(), abs=2)


@needs_uploads
def test_controls_change_the_output(red_model, app):
    with_photos(app, ("hand.png", png_bytes(hand_picture(200, 150)[0])))
    default = hand_fractions(app)[0]
    assert 0 < default < 100
    app.slider(key="dilate").set_value(5.0).run()
    assert hand_fractions(app)[0] > default
    app.slider(key="dilate").set_value(0.0)
    app.slider(key="threshold").set_value(1.0).run()
    assert hand_fractions(app) == [0.0]
    app.slider(key="threshold").set_value(0.0).run()
    assert hand_fractions(app) == [100.0]
    assert not app.exception


@needs_uploads
@pytest.mark.parametrize("choice", ["White", "Colour", "Image"])
def test_every_background_choice_runs(red_model, app, choice):
    with_photos(app, ("hand.png", png_bytes(hand_picture(64, 48)[0])))
    app.radio(key="background").set_value(choice).run()
    if choice == "Image":
        app.file_uploader(key="background_image").upload("sky.png", png_bytes(np.full((10, 10, 3), 90, np.uint8)), "image/png")
        app.run()
    assert not app.exception and not app.error
    assert len(app.image) == 3


@needs_uploads
def test_a_bad_upload_is_one_clear_error_and_the_others_go_on(red_model, app):
    with_photos(app, ("broken.jpg", b"\xff\xd8 not a jpeg"), ("hand.png", png_bytes(hand_picture(64, 48)[0])))
    assert not app.exception
    assert [e.value for e in app.error] == ["broken.jpg: not an image file handseg can read (JPEG, PNG, WebP, AVIF, GIF, BMP, TIFF, HEIC)"]
    assert "Traceback" not in str([e.value for e in app.error])
    assert [s.value for s in app.subheader] == ["hand.png"]


def test_process_matches_the_engine(red_model):
    rgb, _ = hand_picture(160, 120)
    session = handseg_core.load_model(str(red_model))
    refinement = Refinement(feather=0.02)
    item = process(session, "dir/hand.png", png_bytes(rgb), refinement)
    expected = session.segment(rgb, refinement)
    mask = np.asarray(Image.open(io.BytesIO(item.mask_png)))
    cutout = Image.open(io.BytesIO(item.cutout_png))
    assert np.array_equal(mask, expected.mask)
    assert cutout.mode == "RGBA" and np.array_equal(np.asarray(cutout.getchannel("A")), expected.alpha)
    assert item.stem == "hand" and item.hand_fraction == expected.hand_fraction
    assert item.original.size == item.mask.size == item.cutout.size == (160, 120)
    assert item.cutout.mode == "RGB"  # the preview shows transparency as a checkerboard


def test_an_iphone_heic_upload_is_processed(red_model):
    """The uploader takes .heic, and the photo is read (with pillow-heif) like any other."""
    pillow_heif = pytest.importorskip("pillow_heif", reason='HEIC needs pillow-heif (pip install "handseg[heif]")')
    pillow_heif.register_heif_opener()
    from handseg_plugins.webapp.process import UPLOAD_TYPES

    rgb, truth = hand_picture(160, 120, seed=4)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="HEIF", quality=95)
    item = process(handseg_core.load_model(str(red_model)), "IMG_0001.HEIC", buffer.getvalue(), Refinement())
    assert "heic" in UPLOAD_TYPES
    assert item.stem == "IMG_0001" and item.mask.size == (160, 120)
    assert hand_iou(np.asarray(Image.open(io.BytesIO(item.mask_png))) > 127, truth) > 0.8


def test_process_passes_the_input_size_to_the_engine(red_model):
    rgb, _ = hand_picture(320, 240, seed=2)
    session = handseg_core.load_model(str(red_model))
    coarse = process(session, "hand.png", png_bytes(rgb), Refinement(), input_size=24)
    expected = session.segment(rgb, Refinement(), input_size=24).mask
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(coarse.mask_png))), expected)
    plain = process(session, "hand.png", png_bytes(rgb), Refinement())
    assert coarse.mask_png != plain.mask_png


@needs_uploads
def test_finer_edges_sees_large_photos_at_more_pixels(red_model, app):
    # Red stripes 3 px wide on cyan: reduced to the tiny model's 128 px they blur into a
    # greyish cyan, no hand; at the app's finer size they stay red.
    stripes = np.full((700, 900, 3), (60, 200, 200), np.uint8)
    for x in range(0, 900, 12):
        stripes[:, x:x + 3] = (255, 0, 0)
    with_photos(app, ("stripes.png", png_bytes(stripes)))
    assert hand_fractions(app)[0] < 5
    app.checkbox(key="fine").check().run()
    assert hand_fractions(app)[0] > 15 and not app.exception


def test_process_composites_on_a_colour_and_on_an_image(red_model):
    rgb, _ = hand_picture(160, 120)
    session = handseg_core.load_model(str(red_model))
    on_colour = Image.open(io.BytesIO(process(session, "h.png", png_bytes(rgb), Refinement(), "#0000ff").cutout_png))
    assert on_colour.mode == "RGB"
    assert tuple(np.asarray(on_colour)[0, 0]) == (0, 0, 255)
    assert tuple(np.asarray(on_colour)[int(120 * 0.62), 80]) == HAND_RGB  # the palm
    backdrop = png_bytes(np.full((30, 40, 3), 77, np.uint8))
    on_image = np.asarray(Image.open(io.BytesIO(process(session, "h.png", png_bytes(rgb), Refinement(), backdrop).cutout_png)))
    assert tuple(on_image[0, 0]) == (77, 77, 77)


def test_process_names_the_upload_or_the_background_in_errors(red_model):
    session = handseg_core.load_model(str(red_model))
    with pytest.raises(ImageError) as bad_photo:
        process(session, "holiday.jpg", b"junk", Refinement())
    assert bad_photo.value.source == "holiday.jpg"
    with pytest.raises(ImageError) as bad_background:
        process(session, "hand.png", png_bytes(hand_picture(32, 24)[0]), Refinement(), b"junk")
    assert bad_background.value.source == "background image"


def test_zip_holds_every_mask_and_cutout_with_unique_names(red_model):
    session = handseg_core.load_model(str(red_model))
    items = [process(session, name, png_bytes(hand_picture(32, 24, seed=i)[0]), Refinement())
             for i, name in enumerate(["a.png", "b/a.png", "c.jpg.png"])]
    with zipfile.ZipFile(io.BytesIO(zip_results(items))) as archive:
        assert archive.namelist() == ["a-mask.png", "a-cutout.png", "a-2-mask.png", "a-2-cutout.png",
                                      "c.jpg-mask.png", "c.jpg-cutout.png"]
        assert archive.read("a-2-mask.png") == items[1].mask_png


def test_launch_runs_streamlit_on_localhost_and_returns_its_exit_code(monkeypatch):
    calls = []

    class FakeServer:
        def __init__(self, command, env):
            calls.append((command, env))

        def wait(self, timeout=None):
            return 3

        def poll(self):
            return 3

    monkeypatch.setattr(subprocess, "Popen", FakeServer)
    assert webapp.launch(8765, open_browser=False) == 3
    command, env = calls[0]
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(webapp.APP)]
    options = dict(zip(command[5::2], command[6::2]))
    assert options["--server.port"] == "8765"
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.headless"] == "true"
    assert env["STREAMLIT_SERVER_SHOW_EMAIL_PROMPT"] == "false"
    webapp.launch(8765, open_browser=True)
    assert dict(zip(calls[1][0][5::2], calls[1][0][6::2]))["--server.headless"] == "false"


def test_launch_without_streamlit_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    with pytest.raises(HandsegError, match=r"pip install 'handseg\[app\]'"):
        webapp.launch()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as answer:
            return answer.read() == b"ok"
    except OSError:
        return False


def test_the_server_starts_answers_and_stops_with_the_launcher(tmp_path):
    port = free_port()
    code = f"import handseg_plugins.webapp as w; raise SystemExit(w.launch({port}, open_browser=False))"
    with open(tmp_path / "server.log", "wb") as log:
        launcher = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT,
                                    cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not health(port):
            assert launcher.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the web app did not answer in time"
            time.sleep(0.5)
        launcher.terminate()
        assert launcher.wait(timeout=30) == 128 + signal.SIGTERM
        assert not health(port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
