"""Readers for public hand-segmentation datasets in their published layouts (tiny synthetic copies)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from handseg_training import data as D  # noqa: E402
from handseg_training import datasets as DS  # noqa: E402

H, W = 48, 64
RNG = np.random.default_rng(0)


def _image(path: Path, size: tuple[int, int] = (H, W)) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return pixels


def _rect(y0: int, y1: int, x0: int, x1: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """0/255 mask with rows y0..y1-1 and columns x0..x1-1 set."""
    mask = np.zeros(size, np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def _save_mask(path: Path, pixels: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


# --- EgoHands --------------------------------------------------------------------------------


def _matlab_rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """An outline in MATLAB's 1-based (x, y) pixel coordinates."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _polygons_mat(path: Path, frames: list[dict[str, np.ndarray]]) -> None:
    sio = pytest.importorskip("scipy.io")
    fields = ["myleft", "myright", "yourleft", "yourright"]
    struct = np.empty((1, len(frames)), dtype=[(f, object) for f in fields])
    for i, hands in enumerate(frames):
        struct[0, i] = tuple(hands.get(f, np.zeros((0, 0))) for f in fields)
    sio.savemat(str(path), {"polygons": struct})


def _egohands(root: Path) -> dict[str, np.ndarray]:
    """EgoHands layout: two videos; returns the expected mask per frame path."""
    videos = root / "_LABELLED_SAMPLES"
    expected = {}
    a = videos / "CARDS_COURTYARD_B_T"
    for n in (1, 2, 3):
        _image(a / f"frame_{n:04d}.jpg")
    _polygons_mat(
        a / "polygons.mat",
        [
            {"myleft": _matlab_rect(11, 21, 30, 40)},
            {"yourright": _matlab_rect(1, 1, 5, 5), "myright": _matlab_rect(41, 11, 50, 20)},
            {},
        ],
    )
    expected[str(a / "frame_0001.jpg")] = _rect(20, 40, 10, 30)
    expected[str(a / "frame_0002.jpg")] = _rect(0, 5, 0, 5) | _rect(10, 20, 40, 50)
    expected[str(a / "frame_0003.jpg")] = np.zeros((H, W), np.uint8)
    b = videos / "JENGA_OFFICE_H_S"
    _image(b / "frame_0007.jpg")
    _polygons_mat(b / "polygons.mat", [{"yourleft": _matlab_rect(31, 31, 40, 48)}])
    expected[str(b / "frame_0007.jpg")] = _rect(30, 48, 30, 40)
    return expected


def test_egohands_polygons_become_masks_per_frame_in_name_order(tmp_path):
    expected = _egohands(tmp_path / "egohands_data")
    samples = DS.read_egohands(tmp_path / "egohands_data")
    assert [str(s.image) for s in samples] == list(expected)
    assert [s.group for s in samples] == ["CARDS_COURTYARD_B_T"] * 3 + ["JENGA_OFFICE_H_S"]
    for sample in samples:
        np.testing.assert_array_equal(sample.mask(), expected[str(sample.image)], err_msg=str(sample.image))
    # the folder of videos itself reads the same
    again = DS.read_egohands(tmp_path / "egohands_data" / "_LABELLED_SAMPLES")
    assert [s.image for s in again] == [s.image for s in samples]
    assert DS.detect_format(tmp_path / "egohands_data") == "egohands"


def test_egohands_frame_count_mismatch_names_the_file(tmp_path):
    video = tmp_path / "_LABELLED_SAMPLES" / "V"
    _image(video / "frame_0001.jpg")
    _image(video / "frame_0002.jpg")
    _polygons_mat(video / "polygons.mat", [{}])
    with pytest.raises(ValueError, match=r"polygons\.mat: 1 labelled frames but 2"):
        DS.read_egohands(tmp_path)


def test_egohands_mat_without_the_struct_is_rejected(tmp_path):
    sio = pytest.importorskip("scipy.io")
    video = tmp_path / "V"
    _image(video / "frame_0001.jpg")
    sio.savemat(str(video / "polygons.mat"), {"boxes": np.zeros((1, 4))})
    with pytest.raises(ValueError, match="struct array 'polygons' with fields myleft"):
        DS.read_egohands(tmp_path)


# --- EgoYouTubeHands, HandOverFace, GTEA -------------------------------------------------------


def _eyth(root: Path) -> dict[str, np.ndarray]:
    expected = {}
    for vid, frame, rect, suffix in [
        ("vid4", "frame25", (5, 20, 5, 30), ""),  # the published vid4/vid9 masks have no extension
        ("vid4", "frame30", (0, 10, 50, 64), ""),
        ("vid6", "frame1", (30, 48, 0, 12), ".png"),
    ]:
        image = root / "images" / vid / f"{frame}.jpg"
        _image(image)
        expected[str(image)] = _rect(*rect)
        _save_mask(root / "masks" / vid / f"{frame}{suffix}", expected[str(image)])
    (root / "train-val-test-split").mkdir()
    (root / "train-val-test-split" / "train.txt").write_text("vid4/frame25.jpg\nvid6/frame1.jpg\n")
    (root / "train-val-test-split" / "test.txt").write_text("vid4/frame30.jpg\n")
    return expected


def test_eyth_masks_groups_and_split(tmp_path):
    root = tmp_path / "eyth_dataset"
    expected = _eyth(root)
    assert DS.detect_format(root) == "eyth"
    samples = DS.read_eyth(root)
    assert sorted(str(s.image) for s in samples) == sorted(expected)
    assert {Path(s.image).stem: s.group for s in samples} == {"frame25": "vid4", "frame30": "vid4", "frame1": "vid6"}
    for sample in samples:
        np.testing.assert_array_equal(sample.mask(), expected[str(sample.image)])
    train = DS.read(DS.resolve(f"eyth:{root}?split=train", Path("/")))
    assert sorted(s.image.stem for s in train) == ["frame1", "frame25"]


def test_handoverface_nonblack_pixels_are_hand(tmp_path):
    root = tmp_path / "hand_over_face"
    _image(root / "images_resized" / "1.jpg")
    _image(root / "images_resized" / "2.jpg")
    _image(root / "images_original_size" / "1.jpg", (96, 128))
    (root / "annotations").mkdir()
    label_map = np.zeros((H, W), np.uint8)
    label_map[10:20, 5:25] = 1  # a dark label map: every non-zero value is hand
    _save_mask(root / "masks" / "1.png", label_map)
    _save_mask(root / "masks" / "2.png", _rect(0, 48, 40, 64))
    assert DS.detect_format(root) == "handoverface"
    samples = DS.read_handoverface(root)
    assert [(s.image.name, s.group) for s in samples] == [("1.jpg", "1"), ("2.jpg", "2")]
    np.testing.assert_array_equal(samples[0].mask(), _rect(10, 20, 5, 25))
    np.testing.assert_array_equal(samples[1].mask(), _rect(0, 48, 40, 64))


def test_gtea_colour_masks_in_subsets_and_recordings(tmp_path):
    root = tmp_path / "hand2K_dataset"
    _image(root / "GTEA" / "Images" / "s1_coffee_0000123.jpg")
    colour = np.zeros((H, W, 3), np.uint8)
    colour[5:15, 5:15] = (255, 0, 0)  # left hand
    colour[20:30, 40:60] = (0, 0, 255)  # right hand
    _save_mask(root / "GTEA" / "Masks" / "s1_coffee_0000123.png", colour)
    _image(root / "GTEA_GAZE_PLUS" / "Images" / "Ahmad_American" / "0001.jpg")
    _save_mask(root / "GTEA_GAZE_PLUS" / "Masks" / "Ahmad_American" / "0001.png", _rect(40, 48, 0, 64))
    _image(root / "GTEA" / "oldImages" / "x.jpg")  # not read
    assert DS.detect_format(root) == "gtea"
    assert DS.detect_format(root / "GTEA") == "gtea"
    samples = DS.read_gtea(root)
    assert [(s.image.name, s.group) for s in samples] == [
        ("s1_coffee_0000123.jpg", "s1_coffee"),
        ("0001.jpg", "Ahmad_American"),
    ]
    np.testing.assert_array_equal(samples[0].mask(), _rect(5, 15, 5, 15) | _rect(20, 30, 40, 60))
    np.testing.assert_array_equal(samples[1].mask(), _rect(40, 48, 0, 64))


# --- COCO -------------------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[int]:
    """Run lengths of a mask in column-major order, starting with a run of 0s."""
    flat = (mask.T.reshape(-1) > 0).astype(np.int8)
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return runs


def _rle_string(runs: list[int]) -> str:
    """COCO's compressed RLE: 5 bits per character (+48), 0x20 = more, 0x10 of the last = sign,
    runs from the fourth on as differences to the run two before."""
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        while True:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
            if not more:
                break
    return "".join(out)


def test_rle_string_decodes_a_hand_worked_example():
    # runs 3, 40, 5, 10: "3", 40 -> "X1" (two characters), 5 -> "5", 10 - 40 = -30 -> "RO"
    assert DS.decode_rle_string("3X15RO") == [3, 40, 5, 10]
    mask = DS.decode_rle("3X15RO", (29, 2))
    expected = np.zeros((29, 2), np.uint8)
    expected[3:, 0] = 255
    expected[:14, 1] = 255
    expected[19:, 1] = 255
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="add up to 58 pixels, not 10 x 10"):
        DS.decode_rle("3X15RO", (10, 10))


def _coco(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    _image(root / "images" / "a.jpg")
    _image(root / "images" / "clip7" / "b.jpg")
    _image(root / "images" / "c.jpg")
    rle_plain = _rect(20, 30, 30, 40)
    rle_packed = _rect(2, 10, 1, 4) | _rect(30, 48, 50, 64)
    assert len(_runs(rle_packed)) > 4 and any(ch not in "0123456789" for ch in _rle_string(_runs(rle_packed)))
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": H, "width": W, "video_id": 3},
            {"id": 2, "file_name": "clip7/b.jpg", "height": H, "width": W},
            {"id": 3, "file_name": "c.jpg", "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "Hand"}, {"id": 2, "name": "face"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[5, 5, 14, 5, 14, 12, 5, 12]]},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": _runs(rle_plain)}},
            {"id": 3, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": [[30, 0, 45, 0, 45, 8, 30, 8]]},
            {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": _rle_string(_runs(rle_packed))}},
            {"id": 5, "image_id": 3, "category_id": 2, "iscrowd": 0, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        ],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    expected = {
        str(root / "images" / "a.jpg"): _rect(5, 13, 5, 15) | rle_plain,
        str(root / "images" / "clip7" / "b.jpg"): rle_packed,
    }
    return path, expected


def test_coco_polygons_and_both_rle_kinds(tmp_path):
    path, expected = _coco(tmp_path / "hands_coco")
    samples = DS.read_coco(path)
    assert [str(s.image) for s in samples] == list(expected)  # c.jpg has no hand annotation
    assert [s.group for s in samples] == ["3", "clip7"]
    for sample in samples:
        np.testing.assert_array_equal(sample.mask(), expected[str(sample.image)], err_msg=str(sample.image))
    assert DS.detect_format(path) == "coco"
    faces = DS.read(DS.resolve(f"coco:{path}?categories=face&images={path.parent / 'images'}", Path("/")))
    np.testing.assert_array_equal(faces[0].mask(), _rect(0, 9, 30, 46))


# --- Errors and entries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "reader, hint",
    [
        (DS.read_folder, "images/ and masks/"),
        (DS.read_egohands, "EgoHands layout"),
        (DS.read_eyth, "EgoYouTubeHands layout"),
        (DS.read_handoverface, "HandOverFace layout"),
        (DS.read_gtea, "GTEA hand-mask layout"),
        (DS.read_coco, "COCO annotation file"),
    ],
)
def test_a_wrong_layout_names_the_path_and_the_expected_layout(tmp_path, reader, hint):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        reader(tmp_path / "stuff")
    message = str(error.value)
    assert str(tmp_path / "stuff") in message and hint in message and "\n" not in message


def test_entries_prefixes_options_and_detection(tmp_path):
    _eyth(tmp_path / "eyth_dataset")
    entry = DS.resolve("eyth_dataset", tmp_path)
    assert (entry.format, entry.path) == ("eyth", tmp_path / "eyth_dataset")
    entry = DS.resolve("hof:/data/hand_over_face", tmp_path)
    assert (entry.format, entry.path) == ("handoverface", Path("/data/hand_over_face"))
    assert DS.resolve("coco:x/a.json?images=imgs&categories=hand,palm", tmp_path).options == {
        "images": "imgs", "categories": "hand,palm"}
    with pytest.raises(ValueError, match="unknown dataset format 'cocoa'"):
        DS.resolve("cocoa:/x", tmp_path)
    with pytest.raises(ValueError, match="unknown option 'split' for coco; allowed: categories, images"):
        DS.resolve("coco:/x.json?split=train", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no known dataset layout"):
        DS.resolve("empty", tmp_path)
    with pytest.raises(FileNotFoundError, match="missing: no such dataset folder"):
        DS.resolve("missing", tmp_path)


def test_coco_without_hand_categories_lists_them(tmp_path):
    path, _ = _coco(tmp_path)
    with pytest.raises(ValueError, match="no category name contains paw; categories: Hand, face"):
        DS.read_coco(path, categories="paw")


# --- prepare_data -----------------------------------------------------------------------------


def _plain(root: Path) -> None:
    for i, rect in enumerate([(0, 10, 0, 10), (20, 30, 20, 30)]):
        _image(root / "images" / f"VIDEO0_frame_{i:04d}.png")
        _save_mask(root / "masks" / f"VIDEO0_frame_{i:04d}.png", _rect(*rect))


def _config(root: Path, frames: list[str], val_groups: list[str]):
    pytest.importorskip("segmentation_models_pytorch")
    from handseg_training.config import DataConfig, TrainConfig

    data = DataConfig(root=str(root), frames=frames, frame_size=(H, W), val_groups=val_groups, eval=[])
    return TrainConfig(data=data)


def test_prepare_data_reads_prefixed_datasets_and_holds_out_groups(tmp_path):
    from_train = pytest.importorskip("handseg_training.train")
    _plain(tmp_path / "plain")
    ego = _egohands(tmp_path / "ego")
    coco_json, coco = _coco(tmp_path / "hands_coco")
    hof = tmp_path / "elsewhere" / "hand_over_face"
    _image(hof / "images_resized" / "7.jpg")
    _save_mask(hof / "masks" / "7.png", _rect(1, 2, 3, 4))
    frames = ["plain", "egohands:ego", f"coco:{coco_json.relative_to(tmp_path)}?categories=hand", f"handoverface:{hof}"]
    cfg = _config(tmp_path, frames, val_groups=["JENGA_OFFICE_H_S"])

    data = from_train.prepare_data(cfg, cache_dir=None)

    ego_items = list(ego.items())
    expected = (
        [_rect(0, 10, 0, 10), _rect(20, 30, 20, 30)]
        + [mask for _, mask in ego_items[:3]]
        + list(coco.values())
        + [_rect(1, 2, 3, 4)]
    )
    assert data.frames.shape == (len(expected), 4, H, W)
    for i, mask in enumerate(expected):
        np.testing.assert_array_equal(data.frames[i, 3].numpy(), mask, err_msg=f"frame {i}")
    first_ego = D.read_rgb(Path(ego_items[0][0]))
    np.testing.assert_array_equal(data.frames[2, :3].permute(1, 2, 0).numpy(), first_ego)
    held_image, held_mask = ego_items[3]
    assert [str(i) for i, _ in data.val_pairs] == [held_image]
    np.testing.assert_array_equal(D.read_mask(data.val_pairs[0][1]), held_mask)


def test_prepare_data_keeps_plain_folders_as_before(tmp_path):
    from_train = pytest.importorskip("handseg_training.train")
    _plain(tmp_path / "plain")
    _image(tmp_path / "plain" / "images" / "VIDEO1_frame_0000.png")
    _save_mask(tmp_path / "plain" / "masks" / "VIDEO1_frame_0000.png", _rect(5, 6, 7, 8))
    cfg = _config(tmp_path, ["plain"], val_groups=["VIDEO1"])

    data = from_train.prepare_data(cfg, cache_dir=None)

    pairs = D.PairFolder(tmp_path / "plain").pairs()
    assert data.val_pairs == [p for p in pairs if p[0].stem.startswith("VIDEO1")]
    assert torch.equal(data.frames, D.load_pairs([p for p in pairs if p[0].stem.startswith("VIDEO0")], (H, W)))
