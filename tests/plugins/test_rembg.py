from __future__ import annotations

import importlib.util
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import handseg_core
from handseg_core import HandsegError, ModelError, registry
from handseg_core.metrics import hand_iou
from handseg_plugins import rembg as adapter
from tiny_model import HAND_RGB, hand_picture, red_model_bytes, write_red_model

onnx = pytest.importorskip("onnx", reason="the rembg export needs onnx (pip install 'handseg[rembg]')")

HAS_REMBG = importlib.util.find_spec("rembg") is not None
needs_rembg = pytest.mark.skipif(not HAS_REMBG, reason='rembg is not installed (pip install "rembg[cpu,cli]")')
COMPARE = 320


@pytest.fixture(autouse=True)
def _rembg_env(tmp_path, monkeypatch) -> Path:
    """REMBG_HOME in a temporary folder, no other rembg or handseg folders, HOME elsewhere."""
    for name in ("U2NET_HOME", "XDG_DATA_HOME", "HANDSEG_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "rembg-home"
    monkeypatch.setenv("REMBG_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def red_model(tmp_path_factory) -> Path:
    return write_red_model(tmp_path_factory.mktemp("models"))


def rembg_input(image: Image.Image) -> np.ndarray:
    """What rembg 2.0.86 feeds a u2net_custom model (sessions/base.py, BaseSession.normalize)."""
    a = np.array(image.convert("RGB").resize((320, 320), Image.Resampling.LANCZOS))
    a = a / max(np.max(a), 1e-6)
    a = (a - np.array(adapter.REMBG_MEAN)) / np.array(adapter.REMBG_STD)
    return a.transpose(2, 0, 1)[None].astype(np.float32)


def rembg_mask(output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What rembg 2.0.86 makes of the output (sessions/u2net_custom.py, predict)."""
    pred = output[:, 0]
    pred = np.squeeze((pred - pred.min()) / (pred.max() - pred.min()))
    mask = Image.fromarray((pred * 255).astype("uint8"), mode="L")
    return np.asarray(mask.resize(size, Image.Resampling.LANCZOS))


def hand_free_picture(width: int = 480, height: int = 360) -> np.ndarray:
    """No hand: greys that turn slightly pink to the right, so probabilities are low but vary."""
    rgb = np.empty((height, width, 3), np.uint8)
    ramp = np.linspace(0, 24, width)[None, :].repeat(height, 0)
    rgb[..., 0] = 150
    rgb[..., 1] = rgb[..., 2] = (150 - ramp).astype(np.uint8)
    return rgb


def agreement(rembg_alpha: np.ndarray, handseg_mask: np.ndarray) -> float:
    """IoU of the two masks, both resized to COMPARE x COMPARE and cut at half."""
    a = cv2.resize(rembg_alpha, (COMPARE, COMPARE), interpolation=cv2.INTER_LINEAR) > 127
    b = cv2.resize(handseg_mask, (COMPARE, COMPARE), interpolation=cv2.INTER_LINEAR) > 127
    return hand_iou(a, b)


def run_exported(path: Path, image: Image.Image) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: rembg_input(image)})[0]


def test_export_writes_into_rembg_home_and_gives_the_command(red_model, _rembg_env):
    path, command = adapter.export_for_rembg(str(red_model))
    assert path == _rembg_env / "tiny-red-rembg.onnx" and path.is_file()
    assert list(_rembg_env.iterdir()) == [path]
    assert shlex.split(command) == ["rembg", "i", "-m", "u2net_custom", "-x", f'{{"model_path": "{path}"}}', "in.jpg", "out.png"]


def test_exported_file_is_one_checked_onnx_file_with_the_source_opset(red_model, _rembg_env):
    path, _ = adapter.export_for_rembg(str(red_model))
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    source = onnx.load(str(red_model))
    assert [(o.domain, o.version) for o in model.opset_import] == [(o.domain, o.version) for o in source.opset_import]
    assert model.ir_version == source.ir_version
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["handseg_rembg.source_model"] == "tiny-red"
    assert not any(key.startswith(registry.METADATA_PREFIX) for key in metadata)


def test_output_keeps_a_fixed_one_and_zero_so_the_stretch_changes_nothing(red_model):
    path, _ = adapter.export_for_rembg(str(red_model))
    rgb, _ = hand_picture(400, 300)
    out = run_exported(path, Image.fromarray(rgb))
    size = adapter.OUTPUT_SIZE
    assert out.shape == (1, 1, size, size)
    assert out[0, 0, 0, 0] == 1.0 and out[0, 0, 0, 1] == 0.0
    assert out.min() == 0.0 and out.max() == 1.0


def test_graph_agrees_with_handseg_under_rembg_rules(red_model):
    path, _ = adapter.export_for_rembg(str(red_model))
    rgb, truth = hand_picture(480, 360)
    alpha = rembg_mask(run_exported(path, Image.fromarray(rgb)), (480, 360))
    own = handseg_core.load_model(str(red_model)).segment(rgb).mask
    assert agreement(alpha, own) > 0.9
    assert hand_iou(alpha > 127, truth) > 0.9


def test_hand_free_picture_stays_empty_although_a_plain_stretch_would_not(red_model):
    rgb = hand_free_picture()
    probability = handseg_core.load_model(str(red_model)).segment(rgb).probability
    assert probability.max() < 0.1
    stretched = (probability - probability.min()) / (probability.max() - probability.min())
    assert (stretched > 0.5).mean() > 0.2  # what rembg would show without the fixed pixels
    path, _ = adapter.export_for_rembg(str(red_model))
    alpha = rembg_mask(run_exported(path, Image.fromarray(rgb)), (480, 360))
    assert alpha.max() < 64


def test_default_model_exports_and_runs(_rembg_env):
    path, _ = adapter.export_for_rembg()
    assert path.name == f"{registry.default_model_name()}-rembg.onnx"
    out = run_exported(path, Image.fromarray(hand_picture(64, 48)[0]))
    assert out.shape == (1, 1, adapter.OUTPUT_SIZE, adapter.OUTPUT_SIZE) and np.isfinite(out).all()


GOLDEN = Path(__file__).parents[1] / "data" / "golden"


@pytest.mark.parametrize("photo, floor", [
    ("hands11k_fair_Hand_0000006", 0.85),  # a hand filling the photo: 0.045 when the graph enlarged rembg's 320 to 512
    ("hands11k_dark_Hand_0001040", 0.85),
    ("egohands_padova_12", 0.70),  # small hands in a wide frame: rembg's squash costs some
    ("egohands_padova_17", 0.70),
])
def test_default_models_export_finds_the_hands_under_rembg_rules(_rembg_env, photo, floor):
    """The shipped model, as rembg runs it: close-ups whose hand fills the frame are found."""
    path, _ = adapter.export_for_rembg()
    image = Image.open(GOLDEN / f"{photo}.jpg")
    alpha = rembg_mask(run_exported(path, image), image.size)
    truth = np.asarray(Image.open(GOLDEN / f"{photo}.truth.png").convert("L")) >= 128
    assert hand_iou(alpha > 127, truth) >= floor


@pytest.mark.parametrize("input_size, stride, expected", [(512, 32, 320), (320, 32, 320), (256, 32, 256),
                                                          (100, 32, 96), (20, 32, 32), (330, 8, 320)])
def test_network_reads_rembgs_image_at_its_size_or_the_models_smaller_one(input_size, stride, expected):
    from dataclasses import replace

    from tiny_model import SPEC

    assert adapter.network_size(replace(SPEC, input_size=input_size, stride=stride)) == expected


def _side_of_the_graph(model_path: Path, image: Image.Image, opset: int = 17) -> int:
    """The square side at which the exported graph's network sees `image` (its `handseg_side`),
    the source model declared at `opset` (ReduceMax takes its axes as an input from 18)."""
    source = onnx.load(str(model_path))
    source.opset_import[0].version = opset
    spec = handseg_core.load_model(str(model_path)).spec
    model = onnx.load_from_string(adapter.rembg_graph_bytes(source.SerializeToString(), spec))
    model.graph.output.append(onnx.helper.make_tensor_value_info("handseg_side", onnx.TensorProto.INT64, [2]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    side = session.run(["handseg_side"], {"image": rembg_input(image)})[0]
    assert side[0] == side[1]
    return int(side[0])


@pytest.mark.parametrize("limits", [(280, 200), (240, 160)])
@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("hand, gap", [(40, 0), (200, 0), (250, 0), (260, 0), (285, 0), (290, 0), (320, 0), (140, 20)])
def test_the_graph_fits_the_networks_size_to_the_hands_as_the_engine_does(tmp_path, hand, gap, opset, limits):
    """A model of input size 512 sees rembg's 320x320 image at 320, or smaller where the largest
    hand would span more than the model's `hand_limit` pixels, by the engine's own rule
    (`fitted_size`) with the model's own limits; two hands side by side (a gap between them)
    count as two."""
    hand_limit, hand_extent = limits
    model = write_red_model(tmp_path, "wide", input_size=512, stride=32, hand_limit=hand_limit, hand_extent=hand_extent)
    rgb = np.full((320, 320, 3), (40, 160, 160), np.uint8)
    top = (320 - hand // 2) // 2
    if gap:  # two hands of `hand` px each, side by side
        rgb[top:top + hand // 2, 5:5 + hand] = HAND_RGB
        rgb[top:top + hand // 2, 5 + hand + gap:5 + 2 * hand + gap] = HAND_RGB
    else:
        rgb[top:top + hand // 2, (320 - hand) // 2:(320 - hand) // 2 + hand] = HAND_RGB
    engine = handseg_core.load_model(str(model)).fitted_size(rgb, 320)
    assert _side_of_the_graph(model, Image.fromarray(rgb), opset) == engine
    assert (engine < 320) == (hand > hand_limit)


def test_default_home_is_the_legacy_folder_that_every_rembg_accepts(monkeypatch, tmp_path):
    monkeypatch.delenv("REMBG_HOME")
    assert adapter.default_rembg_home() == tmp_path / "home" / ".u2net"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert adapter.default_rembg_home() == tmp_path / "data" / ".u2net"
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "ignored"))
    assert adapter.default_rembg_home() == tmp_path / "u2net"


def test_a_folder_rembg_would_refuse_is_named_in_the_command(red_model, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    path, command = adapter.export_for_rembg(str(red_model), elsewhere)
    assert path.parent == elsewhere
    assert command.startswith(f"U2NET_HOME={elsewhere} rembg i -m u2net_custom ")


def test_old_opset_is_refused_with_a_clear_message():
    model = onnx.load_from_string(red_model_bytes())
    model.opset_import[0].version = 11
    with pytest.raises(ModelError, match="opset 11 is too old"):
        adapter.rembg_graph_bytes(model.SerializeToString(), registry.ModelSpec(name="old", file="old.onnx"))


def test_without_onnx_the_export_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(HandsegError, match=r"pip install 'handseg\[rembg\]'"):
        adapter.export_for_rembg()


def test_unknown_model_is_a_model_error():
    with pytest.raises(ModelError, match="unknown model"):
        adapter.export_for_rembg("no-such-model")


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails the test."""
    import pooch

    def refuse(*args, **kwargs):
        raise AssertionError(f"rembg tried to download something: {args} {kwargs}")

    monkeypatch.setattr(pooch, "retrieve", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@needs_rembg
def test_rembg_python_api_matches_handseg(red_model, _rembg_env, no_network):
    import rembg

    path, _ = adapter.export_for_rembg(str(red_model))
    session = rembg.new_session("u2net_custom", model_path=str(path))
    rgb, _ = hand_picture(480, 360)
    alpha = np.asarray(rembg.remove(Image.fromarray(rgb), session=session, only_mask=True))
    own = handseg_core.load_model(str(red_model)).segment(rgb).mask
    assert alpha.shape == own.shape
    assert agreement(alpha, own) > 0.9
    blank = np.asarray(rembg.remove(Image.fromarray(hand_free_picture()), session=session, only_mask=True))
    assert (blank > 127).sum() == 0
    assert list(_rembg_env.iterdir()) == [path]


@needs_rembg
def test_rembg_refuses_the_model_outside_its_folders_without_the_env(red_model, tmp_path):
    import rembg

    path, _ = adapter.export_for_rembg(str(red_model), tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="models directory"):
        rembg.new_session("u2net_custom", model_path=str(path))


def rembg_executable() -> str | None:
    found = shutil.which("rembg") or str(Path(sys.executable).with_name("rembg"))
    if not Path(found).exists():
        return None
    probe = subprocess.run([found, "i", "--help"], capture_output=True, text=True, timeout=120)
    return found if probe.returncode == 0 else None


@needs_rembg
def test_rembg_command_line_matches_handseg(red_model, tmp_path, _rembg_env, monkeypatch):
    executable = rembg_executable()
    if executable is None:
        pytest.skip('the rembg command line is not installed (pip install "rembg[cpu,cli]")')
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # a download would fail, not hang
    path, command = adapter.export_for_rembg(str(red_model))
    rgb, _ = hand_picture(480, 360)
    source, target = tmp_path / "hand.png", tmp_path / "out.png"
    Image.fromarray(rgb).save(source)
    argv = shlex.split(command)
    assert argv[0] == "rembg" and argv[-2:] == ["in.jpg", "out.png"]
    done = subprocess.run([executable, *argv[1:-2], str(source), str(target)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cut = Image.open(target)
    assert cut.mode == "RGBA" and cut.size == (480, 360)
    own = handseg_core.load_model(str(red_model)).segment(rgb).mask
    assert agreement(np.asarray(cut.getchannel("A")), own) > 0.9
    assert list(_rembg_env.iterdir()) == [path]
