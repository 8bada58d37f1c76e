"""Hand photos given a forearm that is labelled background: where EgoHands' masks stop.
Found: drawn forearms labelled background are learnt but do not carry over to real ones (cross14
+0.000, errors past the wrists stay 0.034, hands over faces -0.007); not kept.

    python -m research.forearms ../shared/data/hands11k_subset LANDMARKS.json --out DATA/hands11k_arms
        [--backgrounds ../shared/data/backgrounds] [--margin 0.3] [--holdout-subjects 0.2]

The hand photos' masks run to the photo's edge at the wrist, and pasted hands never show an arm,
while EgoHands' masks stop at the wrist: the network takes new scenes' forearms and sleeves for
hand (docs/models.md, Known limits: 0.035 of cross14's IoU lies past the wrists). This makes a set in
which each hand photo (with one hand found by `landmarks.py`) is padded on its arm's side and
given a forearm running from the wrist off the photo's edge: the wrist's own colours across its
width, drawn on along the arm with its shading, slowly widening; half of them covered by a
sleeve of a background's texture from some way up the arm.

Writes `images/` (the padded photo with the arm), `masks/` (what is pasted: hand and arm) and
`labels/` (what is hand: the mask cut `--margin` palm lengths past the wrist), paired by stem;
training reads `labels/` as the target where a config sets `data.hand_labels = "labels"`.
11k Hands subjects held out of training (`--holdout-subjects`, the same split and seed as
training) are left out, so the skin-tone report and the out-of-domain set stay unseen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from handseg_training import data as D
from research.errors import MIDDLE_BASE, WRIST, read_landmarks
from handseg_training.data import EXCLUDE, excluded

SIZE = 256  # side of the written squares
PAD = 0.6  # room for the arm, as a share of the photo's side, on the side(s) it leaves by
SLEEVE = 0.5  # share of arms covered by a sleeve
REAL_ARM = 0.05  # a mask with more than this share past the label's end is left out


def _wrist_profile(rgb: np.ndarray, mask: np.ndarray, wrist: np.ndarray, axis: np.ndarray,
                   across: np.ndarray, palm: float) -> tuple[np.ndarray, float, float] | None:
    """(colours across the wrist [K, 3] from one side to the other, offset of its left side and
    of its right side along `across`), averaged over a band 0.3 palm lengths either side of the
    wrist; None where the mask is too thin there."""
    height, width = mask.shape
    sides = []
    for sign in (-1, 1):
        reach = 0.0
        while reach < 2 * palm:
            x, y = wrist + sign * (reach + 1) * across
            if not (0 <= x < width and 0 <= y < height) or not mask[int(y), int(x)]:
                break
            reach += 1
        sides.append(reach)
    left, right = -sides[0], sides[1]
    if right - left < 0.3 * palm:
        return None
    steps = np.linspace(left, right, 32, dtype=np.float32)
    rows = []
    for t in np.linspace(-0.3 * palm, 0.3 * palm, 7, dtype=np.float32):
        points = wrist[None] + t * axis[None] + steps[:, None] * across[None]
        xs = np.clip(points[:, 0], 0, width - 1).astype(np.float32)
        ys = np.clip(points[:, 1], 0, height - 1).astype(np.float32)
        rows.append(cv2.remap(rgb, xs[None], ys[None], cv2.INTER_LINEAR)[0].astype(np.float32))
    profile = cv2.GaussianBlur(np.median(np.stack(rows), 0)[None], (1, 5), 0)[0]
    return profile, left, right


def with_forearm(rgb: np.ndarray, mask: np.ndarray, hand: list, sleeve_texture: np.ndarray | None,
                 rng: np.random.Generator, margin: float = 0.3):
    """(image, pasted mask, hand label), squares of SIZE, or None where the hand's wrist cannot
    be read (too thin a wrist, no palm) or the mask runs on past it (REAL_ARM)."""
    wrist = np.asarray(hand[WRIST], np.float32)
    knuckle = np.asarray(hand[MIDDLE_BASE], np.float32)
    palm = float(np.linalg.norm(knuckle - wrist))
    if palm < 4:
        return None
    axis = (knuckle - wrist) / palm  # towards the fingers
    across = np.array([-axis[1], axis[0]], np.float32)
    found = _wrist_profile(rgb, mask, wrist, axis, across, palm)
    if found is None:
        return None
    profile, left, right = found

    # Pad the photo on the side(s) the arm leaves by, then to a square.
    height, width = mask.shape
    room = int(PAD * max(height, width))
    top = room if axis[1] > 0.35 else 0  # the arm points away from the fingers
    bottom = room if axis[1] < -0.35 else 0
    lft = room if axis[0] > 0.35 else 0
    rgt = room if axis[0] < -0.35 else 0
    h2, w2 = height + top + bottom, width + lft + rgt
    side = max(h2, w2)
    top += (side - h2) // 2
    bottom += side - h2 - (side - h2) // 2
    lft += (side - w2) // 2
    rgt += side - w2 - (side - w2) // 2
    image = cv2.copyMakeBorder(rgb, top, bottom, lft, rgt, cv2.BORDER_REPLICATE).astype(np.float32)
    hand_mask = cv2.copyMakeBorder(mask.astype(np.uint8), top, bottom, lft, rgt, cv2.BORDER_CONSTANT, value=0) > 0
    wrist = wrist + np.array([lft, top], np.float32)

    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    along = (xx - wrist[0]) * axis[0] + (yy - wrist[1]) * axis[1]  # negative: towards the arm
    off = (xx - wrist[0]) * across[0] + (yy - wrist[1]) * across[1]
    distance = np.maximum(-along, 0) / palm
    widen = 1 + 0.12 * distance  # forearms widen towards the elbow
    centre = (left + right) / 2 + rng.uniform(-0.08, 0.08) * palm * distance  # and bend a little
    half = (right - left) / 2 * widen
    t = (off - centre) / np.maximum(half, 1e-3)  # -1..1 across the arm
    arm = (along < 0) & (np.abs(t) <= 1) & ~hand_mask
    if (hand_mask & (along < -margin * palm)).sum() > REAL_ARM * hand_mask.sum():
        return None  # the photo's own forearm, or a landmark misplaced (on fists): not drawn on

    # Colour: the wrist's profile across the arm, its shading kept, varied slowly along it.
    index = np.clip((t + 1) / 2 * (len(profile) - 1), 0, len(profile) - 1)
    colour = cv2.remap(profile[None].astype(np.float32), index.astype(np.float32), np.zeros_like(index), cv2.INTER_LINEAR)
    waves = rng.uniform(0, 2 * np.pi, 3)
    light = 1 + 0.06 * np.sin(distance * 2.1 + waves[0]) + 0.04 * np.sin(distance * 5.3 + waves[1])
    colour = colour * light[..., None] * (0.93 + 0.07 * np.cos(t * np.pi / 2))[..., None]
    colour += rng.normal(0, 2.0, colour.shape).astype(np.float32)

    if sleeve_texture is not None:
        start = rng.uniform(0.25, 1.6)
        cuff = start + 0.04 * np.sin(t * 3 + waves[2])
        sleeve_t = (off - centre) / np.maximum(half * 1.3, 1e-3)
        sleeve = (along < 0) & (distance >= cuff) & (np.abs(sleeve_t) <= 1) & ~hand_mask
        cloth = cv2.resize(sleeve_texture, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        cloth *= (0.65 + 0.35 * np.cos(np.clip(sleeve_t, -1, 1) * np.pi / 2))[..., None]
        colour = np.where(sleeve[..., None], cloth, colour)
        arm |= sleeve
    edge = cv2.GaussianBlur(arm.astype(np.float32), (3, 3), 0)[..., None]  # a soft outline, as photos have
    image = image * (1 - edge) + np.where(arm[..., None], colour, image) * edge
    label = hand_mask & (along >= -margin * palm)
    pasted = hand_mask | arm

    def square(a: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.resize(a, (SIZE, SIZE), interpolation=interpolation)

    return (np.clip(square(image, cv2.INTER_AREA), 0, 255).astype(np.uint8),
            square(pasted.astype(np.uint8) * 255, cv2.INTER_LINEAR) >= 128,
            square(label.astype(np.uint8) * 255, cv2.INTER_LINEAR) >= 128)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m research.forearms", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a hand photo set: images/ + masks/")
    parser.add_argument("landmarks", type=Path, help="its hand landmarks (research/landmarks.py)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backgrounds", type=Path, help="textures for sleeves (the out-of-domain set's are left out)")
    parser.add_argument("--margin", type=float, default=0.3, help="the label stops this many palm lengths past the wrist")
    parser.add_argument("--holdout-subjects", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="the held-out subjects' seed (training's) and the drawing's")
    args = parser.parse_args(argv)
    landmarks = read_landmarks(args.landmarks)
    pairs = D.PairFolder(args.folder).pairs()
    info = D.hands11k_subjects(args.folder)
    if info and args.holdout_subjects > 0:
        pairs, _ = D.split_by_subject(pairs, info, args.holdout_subjects, args.seed)
    textures = []
    if args.backgrounds:
        root = args.backgrounds.parent
        textures = [p for p in D.list_images(args.backgrounds) if not excluded(p, root, EXCLUDE)]
    rng = np.random.default_rng(args.seed)
    for sub in ("images", "masks", "labels"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for image_path, mask_path in pairs:
        hands = landmarks.get(image_path.stem) or []
        if len(hands) != 1:
            skipped += 1
            continue
        texture = None
        if textures and rng.random() < SLEEVE:
            texture = D.read_rgb(textures[rng.integers(len(textures))])
        made = with_forearm(D.read_rgb(image_path), D.read_mask(mask_path) >= 128, hands[0], texture, rng, args.margin)
        if made is None:
            skipped += 1
            continue
        image, pasted, label = made
        cv2.imwrite(str(args.out / "images" / f"{image_path.stem}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(args.out / "masks" / f"{image_path.stem}.png"), pasted.astype(np.uint8) * 255)
        cv2.imwrite(str(args.out / "labels" / f"{image_path.stem}.png"), label.astype(np.uint8) * 255)
        written += 1
    print(f"{args.out}: {written} photos with a forearm; {skipped} left out (no single hand found, no wrist to read, "
          "or a mask running on past the wrist)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
