"""Training samples for the per-hand segmenter: upright crops around each hand the finder finds,
with its landmarks drawn as two extra channels, and the target that hand's own mask.

Two kinds of sample:

- real frames (EgoHands): the crop around a found hand; the target is that hand alone (its
  region in `hands4/`), so the other hands in the crop are background and the network learns
  to follow the landmarks it is given;
- composites: a hand photo pasted into the crop over a face or a scene, its colours moved
  towards the face's own skin (mean and spread in YCrCb, at a random strength), its edge softened,
  sometimes blurred on its own, and the whole crop JPEG-compressed: a pasted hand should not be
  told apart by light, tone or focus. A face that shows a hand of its own is never a background.

A few samples are distractors: a hand's landmarks drawn over a background with no hand, target
empty, so that the network does not paint whatever the finder points at.

The crops are cut with `handseg_core.handcrop`, the same functions the engine uses; the finder's
landmarks jitter (shift, scale, rotation of the square; noise on each point) as they do between
the finder's runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from handseg_core import handcrop
from handseg_training import data as D
from handseg_training.data import excluded


@dataclass
class CropData:
    """Where the samples come from (folders under `root`)."""

    root: str = "../shared/data"
    landmarks: str = "cache/landmarks"  # OUT of `python -m handseg_training.hand_landmarks`
    frames: list[str] = field(default_factory=lambda: ["egohands_400"])
    hand_photos: list[str] = field(default_factory=lambda: ["hands11k_subset", "massey_asl", "sign_digits"])
    faces: list[str] = field(default_factory=lambda: ["faces_utk"])
    backgrounds: list[str] = field(default_factory=lambda: ["backgrounds"])
    exclude: list[str] = field(default_factory=lambda: ["backgrounds/urban100/*", "backgrounds/sun_hays80/*",
                                                        "faces_utk/images/*0.jpg"])
    # faces that show a hand (never backgrounds): faces_utk/hands.txt and the faces_utk_hands set
    faces_with_hands: list[str] = field(default_factory=lambda: ["faces_utk/hands.txt", "faces_utk_hands/images"])
    holdout_subjects: float = 0.2  # 11k Hands subjects kept out (the same split as the whole-image recipe)
    seed: int = 0


@dataclass
class CropAugment:
    frame_share: float = 0.35  # of a batch: real frames; the rest composites
    face_share: float = 0.6  # of composites: over a face
    own_background: float = 0.12  # of composites: the hand photo's own background (close-ups)
    distractor: float = 0.05  # of composites over scenes: landmarks over a background without a hand
    shift: float = 0.08  # the square's centre, of its side
    scale: tuple[float, float] = (0.85, 1.25)
    rotation: float = 20.0  # degrees
    point_noise: float = 0.04  # of the palm length
    harmonise: tuple[float, float] = (0.4, 1.0)  # strength of the move to the face's skin colour
    hand_blur: float = 0.3  # probability the pasted hand alone is blurred
    jpeg: float = 0.35  # probability of JPEG compression (quality 35-90)
    flip: float = 0.5


@dataclass
class HandSample:
    image: int  # index into CropSet.images
    landmarks: np.ndarray  # [21, 3] in the image's pixels
    instance: int  # the mask value of this hand (255 for a plain mask)


@dataclass
class CropSet:
    images: list[np.ndarray]  # uint8 RGB
    masks: list[np.ndarray]  # uint8: 0 background, hand values as `instance`
    samples: list[HandSample]


def _load_landmarks(folder: Path, name: str) -> dict:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no landmarks for {name}; run python -m handseg_training.hand_landmarks "
                                f"DATA --sets {name} --out {folder}")
    return json.loads(path.read_text())


def load_set(root: Path, name: str, landmarks_dir: Path, keep=lambda image: True) -> CropSet:
    """A set's photos, masks (EgoHands: `hands4/` instances) and the hands found on a hand."""
    folder = root / name
    found = _load_landmarks(landmarks_dir, name)
    instances = folder / "hands4"
    images, masks, samples = [], [], []
    for image_path, mask_path in D.PairFolder(folder).pairs():
        hands = [h for h in found.get(image_path.stem, []) if h["instance"] > 0]
        if not hands or not keep(image_path):
            continue
        if instances.is_dir():
            mask = D.read_mask(instances / f"{image_path.stem}.png")
        else:
            mask = np.where(D.read_mask(mask_path) >= 128, 255, 0).astype(np.uint8)
            hands = hands[:1]  # a hand photo shows one hand: the most certain find on it
        for hand in hands:
            samples.append(HandSample(len(images), np.asarray(hand["landmarks"], np.float32), hand["instance"]))
        images.append(D.read_rgb(image_path))
        masks.append(mask)
    return CropSet(images, masks, samples)


def load_backgrounds(root: Path, names: list[str], exclude: list[str], without: set[str]) -> list[np.ndarray]:
    return [D.read_rgb(p) for name in names for p in D.list_images(root / name)
            if not excluded(p, root, exclude) and p.stem not in without]


def faces_with_hands(root: Path, entries: list[str]) -> set[str]:
    stems: set[str] = set()
    for entry in entries:
        path = root / entry
        if path.is_file():
            stems |= {line.strip() for line in path.read_text().splitlines() if line.strip()}
        elif path.is_dir():
            stems |= {p.stem for p in path.iterdir()}
    return stems


def skin_stats(face: np.ndarray) -> np.ndarray:
    """[2, 3]: mean and spread (YCrCb) of an aligned face crop's centre, where its skin is."""
    h, w = face.shape[:2]
    centre = face[int(0.35 * h):int(0.75 * h), int(0.3 * w):int(0.7 * w)]
    ycc = cv2.cvtColor(centre, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float32)
    return np.stack([ycc.mean(0), ycc.std(0) + 1.0])


def harmonise(rgb: np.ndarray, alpha: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Move the hand's colours (where alpha > 0.5) towards `target` skin statistics."""
    inside = alpha > 0.5
    if inside.sum() < 16:
        return rgb
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    own = ycc[inside]
    mean, spread = own.mean(0), own.std(0) + 1.0
    gain = 1 + strength * (np.clip(target[1] / spread, 0.5, 2.0) - 1)
    moved = (ycc - mean) * gain + mean + strength * (target[0] - mean)
    return cv2.cvtColor(np.clip(moved, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


class CropSampler:
    """Draws (input [5, S, S] with RGB in 0..1, target [S, S] in {0, 1}) samples."""

    def __init__(self, frames: CropSet | None, hands: CropSet, faces: list[np.ndarray], scenes: list[np.ndarray],
                 augment: CropAugment, size: int = handcrop.CROP_SIZE, seed: int = 0):
        self.frames, self.hands, self.faces, self.scenes = frames, hands, faces, scenes
        self.face_stats = [skin_stats(f) for f in faces]
        self.cfg = augment
        self.size = size
        self.rng = np.random.default_rng(seed)

    def _jittered(self, landmarks: np.ndarray) -> tuple[tuple, np.ndarray]:
        """The square around the landmarks, jittered, and the landmarks with noise on each point."""
        rng, cfg = self.rng, self.cfg
        cx, cy, side, rotation = handcrop.crop_square(landmarks)
        cx += rng.normal(0, cfg.shift) * side
        cy += rng.normal(0, cfg.shift) * side
        side *= math.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
        rotation += math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
        palm = float(np.hypot(*(landmarks[9, :2] - landmarks[0, :2])))
        noisy = landmarks.copy()
        noisy[:, :2] += rng.normal(0, cfg.point_noise * palm, size=(21, 2)).astype(np.float32)
        return (cx, cy, side, rotation), noisy

    def _finish(self, rgb: np.ndarray, points: np.ndarray, target: np.ndarray):
        if self.rng.random() < self.cfg.flip:
            rgb, target = rgb[:, ::-1], target[:, ::-1]
            points = points.copy()
            points[:, 0] = self.size - points[:, 0]
        if self.rng.random() < self.cfg.jpeg:
            quality = int(self.rng.integers(35, 91))
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb), [cv2.IMWRITE_JPEG_QUALITY, quality])
            rgb = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        drawn = handcrop.render_landmarks(points, self.size)
        image = np.ascontiguousarray(rgb).astype(np.float32).transpose(2, 0, 1) / 255
        return np.concatenate([image, drawn]), np.ascontiguousarray(target, dtype=np.float32)

    def frame_sample(self):
        sample = self.frames.samples[self.rng.integers(len(self.frames.samples))]
        image, mask = self.frames.images[sample.image], self.frames.masks[sample.image]
        square, points = self._jittered(sample.landmarks)
        rgb = handcrop.cut(image, square, self.size)
        own = (mask == sample.instance).astype(np.uint8) * 255
        target = handcrop.cut(own, square, self.size) >= 128
        return self._finish(rgb, handcrop.landmarks_in_crop(points, square, self.size), target)

    def _background(self, pool: list[np.ndarray], face: bool = False) -> tuple[np.ndarray, int]:
        """A random view of a background; of a face, one where the hand (at the crop's centre)
        lies on its lower half: on the mouth, chin or a cheek, where real hands rest."""
        rng, s = self.rng, self.size
        index = int(rng.integers(len(pool)))
        source = pool[index]
        h, w = source.shape[:2]
        if face:  # aligned crops: the face fills the crop; its width spans 0.8-2.2 crops
            zoom = rng.uniform(0.8, 2.2) * s / w
            centre = (rng.uniform(0.15, 0.85) * w, rng.uniform(0.5, 1.0) * h)
            offset = rng.uniform(-0.2, 0.2, size=2) * s
        else:
            zoom = rng.uniform(1.0, 2.5) * s / min(h, w)
            centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
            offset = np.zeros(2)
        matrix = cv2.getRotationMatrix2D(centre, rng.uniform(-20, 20), zoom)
        matrix[:, 2] += (s / 2 + offset[0] - centre[0], s / 2 + offset[1] - centre[1])
        canvas = cv2.warpAffine(source, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return canvas, index

    def composite_sample(self):
        rng, cfg, s = self.rng, self.cfg, self.size
        sample = self.hands.samples[rng.integers(len(self.hands.samples))]
        photo, mask = self.hands.images[sample.image], self.hands.masks[sample.image]
        square, points = self._jittered(sample.landmarks)
        matrix = handcrop.pixel_indices(handcrop.crop_matrix(square, s))
        on_face = rng.random() < cfg.face_share
        canvas, index = self._background(self.faces if on_face else self.scenes, on_face)
        if not on_face and rng.random() < cfg.distractor:  # over scenes only: over a face it taught
            # the network to refuse real hands at the chin (faces_utk_hands: 8 empty masks, not 3)
            return self._finish(canvas, handcrop.landmarks_in_crop(points, square, s), np.zeros((s, s), bool))
        own_background = rng.random() < cfg.own_background
        border = cv2.BORDER_REPLICATE if own_background else cv2.BORDER_CONSTANT
        hand = cv2.warpAffine(photo, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=border)
        alpha = cv2.warpAffine(mask, matrix, (s, s), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
        target = alpha >= 0.5
        if own_background:
            return self._finish(hand, handcrop.landmarks_in_crop(points, square, s), target)
        stats = self.face_stats[index] if on_face else (
            self.face_stats[rng.integers(len(self.face_stats))] if rng.random() < 0.5 else None)
        if stats is not None:
            hand = harmonise(hand, alpha, stats, rng.uniform(*cfg.harmonise))
        if rng.random() < cfg.hand_blur:
            sigma = rng.uniform(0.6, 1.8)
            hand = cv2.GaussianBlur(hand, (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
        a = cv2.GaussianBlur(alpha, (0, 0), 0.7)[:, :, None]
        rgb = (canvas.astype(np.float32) * (1 - a) + hand.astype(np.float32) * a).round().astype(np.uint8)
        return self._finish(rgb, handcrop.landmarks_in_crop(points, square, s), target)

    def batch(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs float32 [count, 5, S, S], targets float32 [count, 1, S, S])."""
        inputs, targets = [], []
        for _ in range(count):
            real = self.frames is not None and self.rng.random() < self.cfg.frame_share
            x, y = self.frame_sample() if real else self.composite_sample()
            inputs.append(x)
            targets.append(y)
        return np.stack(inputs), np.stack(targets)[:, None]


def build_sampler(data: CropData, augment: CropAugment, size: int = handcrop.CROP_SIZE, seed: int = 0) -> CropSampler:
    root, marks = Path(data.root), Path(data.landmarks)
    held: set[Path] = set()
    for name in data.hand_photos:
        info = D.hands11k_subjects(root / name)
        if info and data.holdout_subjects > 0:
            _, out = D.split_by_subject(D.PairFolder(root / name).pairs(), info, data.holdout_subjects, data.seed)
            held |= {image for image, _ in out}

    def keep(image: Path) -> bool:
        return image not in held and not excluded(image, root, data.exclude)

    frames = None
    if data.frames:
        sets = [load_set(root, name, marks) for name in data.frames]
        frames = _join(sets)
    hands = _join([load_set(root, name, marks, keep) for name in data.hand_photos])
    without = faces_with_hands(root, data.faces_with_hands)
    faces = load_backgrounds(root, data.faces, data.exclude, without)
    scenes = load_backgrounds(root, data.backgrounds, data.exclude, without)
    return CropSampler(frames, hands, faces, scenes, augment, size, seed)


def _join(sets: list[CropSet]) -> CropSet:
    images, masks, samples = [], [], []
    for part in sets:
        offset = len(images)
        images += part.images
        masks += part.masks
        samples += [HandSample(s.image + offset, s.landmarks, s.instance) for s in part.samples]
    return CropSet(images, masks, samples)
