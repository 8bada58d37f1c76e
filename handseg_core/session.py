"""A loaded model: ONNX Runtime session plus the pre- and post-processing recorded with it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np

from handseg_core import hands as per_hand
from handseg_core import registry
from handseg_core.errors import ModelError, OptionError
from handseg_core.finder import FinderOptions, load_finder
from handseg_core.hands import Hand
from handseg_core.images import ImageInput, load_rgb_reduced
from handseg_core.options import (  # noqa: F401
    DEVICES, MAX_INPUT_SIZE, Device, HandChoice, Refinement, check_input_size, parse_choice,
)
from handseg_core.postprocess import refine, snap_to_edges
from handseg_core.preprocess import prepare, resize_long_side, resized_size, restore
from handseg_core.registry import ModelSpec
from handseg_core.runtime import session_options
from handseg_core.sizing import FIND_SIZE, FIT_STEP, adapts_at, fit_floor, fit_rule, inference_size  # noqa: F401

# The sizing rule (FIND_SIZE, the quick pass, the model's range) is `handseg_core.sizing`.
# Photos of more pixels are segmented at a reduced size and their results made full size in
# bands (handseg_core.large): a 150-megapixel cut-out in 1.1 GB instead of 6.5 (bench/RESULTS.md).
WORK_PIXELS = 16_000_000
_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


@dataclass(frozen=True)
class SegmentationResult:
    """The hands found in one image, at the image's displayed size.

    mask: uint8 HxW, 255 where there is a hand and 0 elsewhere.
    probability: float32 HxW in 0..1, the hand probability the mask was cut from: the network's,
        with its edges snapped onto the photo's (unless the refinement's `snap_edges` is off).
    alpha: uint8 HxW, the mask with a feathered edge when refinement asks for one (else the mask).
    hands: one `Hand` per hand, the largest first (mask, box, score, handedness, landmarks); their
        masks together are `mask`. Empty when there is no hand.
    """

    mask: np.ndarray
    probability: np.ndarray
    alpha: np.ndarray
    model: str
    hands: tuple[Hand, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image."""
        return self.mask.shape[1], self.mask.shape[0]

    @property
    def hand_fraction(self) -> float:
        return float(np.count_nonzero(self.mask)) / self.mask.size

    def keep(self, choice: HandChoice) -> "SegmentationResult":
        """This result with only some of its hands: "all", "largest", "left" or "right" (the
        person's own hand, as the finder saw it) or N, the N largest. Where none fits, an empty
        result (no error). Raises HandsegError for another choice."""
        keep = per_hand.chosen(self.hands, choice)
        if len(keep) == len(self.hands):
            return self
        mask, probability, alpha = per_hand.restrict(self.hands, keep, self.mask, self.probability, self.alpha)
        return SegmentationResult(mask, probability, alpha, self.model, tuple(self.hands[k] for k in keep))

    def describe(self) -> dict:
        """The result as plain JSON values: image size, model, hand fraction and each hand's box,
        area, score, handedness and landmarks (what `handseg cutout --json` writes)."""
        width, height = self.size
        return {"width": width, "height": height, "model": self.model,
                "hand_fraction": round(self.hand_fraction, 6),
                "hands": [per_hand.describe(hand) for hand in self.hands]}


def resolve_device(device: str) -> list[str]:
    import onnxruntime as ort

    if device not in DEVICES:
        raise ModelError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ModelError("device 'cuda' asked for, but this onnxruntime has no CUDA support: pip install onnxruntime-gpu")
    return _PROVIDERS[device]


class HandSegmenter:
    """A model loaded once and reused for any number of images (ONNX Runtime runs are thread-safe).

    Create it with `handseg_core.load_model`. Use it as a context manager or call `close()` to
    free it early.
    """

    def __init__(self, spec: ModelSpec, *, device: Device = "auto", threads: int | None = None):
        import onnxruntime as ort

        data = registry.read_verified(spec)
        options = session_options(threads)
        try:
            self._session = ort.InferenceSession(data, sess_options=options, providers=resolve_device(device))
            metadata = self._session.get_modelmeta().custom_metadata_map
            if not spec.encoder and any(k.startswith(registry.METADATA_PREFIX) for k in metadata):
                recorded = ModelSpec.from_metadata(metadata, spec.path)
                spec = ModelSpec(**{**recorded.__dict__, "sha256": spec.sha256, "name": spec.name})
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types; damaged metadata too
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{spec.path}: not a loadable ONNX model ({reason})") from None
        self.spec = spec
        self.providers = self._session.get_providers()
        self._input = self._session.get_inputs()[0].name
        self._options, self._threads = options, threads
        self._per_hand: per_hand.PerHandSegmenter | None = None
        self._per_hand_lock = threading.Lock()

    def _hand_segmenter(self) -> per_hand.PerHandSegmenter | None:
        """The model's per-hand network (its spec's `hands_model`), loaded on first use; None
        for a model without one."""
        if not self.spec.hands_model:
            return None
        with self._per_hand_lock:
            if self._per_hand is None:
                spec = registry.find_kind(self.spec.hands_model, per_hand.KIND)
                self._per_hand = per_hand.PerHandSegmenter(spec, self._options, self.providers)
        return self._per_hand

    def __repr__(self) -> str:
        return f"HandSegmenter({self.spec.name!r}, providers={self.providers})"

    def __enter__(self) -> "HandSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._session = None
        _forget(self)

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise ModelError(f"model {self.spec.name!r} was closed; load it again with handseg_core.load_model")
        return self._session.run(None, {self._input: tensor})[0]

    def probability(self, rgb: np.ndarray, input_size: int | None = None, flip_tta: bool = False,
                    adapt_size: bool = True) -> np.ndarray:
        """Hand probability (float32 HxW) for a uint8 RGB array.

        The network sees the image with its long side at most `input_size` (default: the model's
        input size): a larger image is reduced to it, a smaller one keeps its own size, but not
        below the model's `min_input_size` (see `inference_size`); with `adapt_size`, smaller
        where the hands are large (see `segment`).
        """
        check_input_size(input_size)
        size = inference_size(self.spec, rgb.shape[:2], input_size)
        return self._probability(rgb, self._network_view(rgb, size, adapt_size), flip_tta, rgb.shape[:2])

    def fitted_size(self, rgb: np.ndarray, size: int) -> int:
        """`size`, or where the largest hand in `rgb` would span more than the model's
        `hand_limit` network pixels at it, the smaller long side at which it spans its
        `hand_extent` (from one pass at FIND_SIZE). Never below the model's `min_input_size`."""
        check_input_size(size, "size")
        return self._fitted_size(resize_long_side(rgb, size), size)

    def _fitted_size(self, view: np.ndarray, size: int) -> int:
        """`fitted_size` of an image already resized to `size` (`view`): the quick pass reduces
        it, not the decoded photo, which takes a fifth of the time on a 1280x720 photo."""
        rule = fit_rule(self.spec, size)
        if rule is None:
            return size
        prepared = prepare(view, FIND_SIZE, self.spec.mean, self.spec.std, self.spec.stride)
        rh, rw = prepared.resized_hw
        found = (self._run(prepared.tensor)[0, 0, :rh, :rw] >= 0.5).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
        sizable = stats[1:, cv2.CC_STAT_AREA] >= 0.002 * rh * rw  # specks say nothing of scale
        if count <= 1 or not sizable.any():
            return size
        extent = stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]][sizable].max() / max(rh, rw)  # of the long side
        return rule.side(float(extent))

    def _network_view(self, rgb: np.ndarray, size: int, adapt_size: bool) -> np.ndarray:
        """`rgb` resized as the network sees it: long side `size`, or with `adapt_size`,
        `fitted_size`'s."""
        view = resize_long_side(rgb, size)
        if adapt_size:
            fitted = self._fitted_size(view, size)
            if fitted != size:
                view = resize_long_side(rgb, fitted)
        return view

    def _probability(self, rgb: np.ndarray, view: np.ndarray, flip_tta: bool, out_hw: tuple[int, int],
                     snap_edges: bool = False) -> np.ndarray:
        """The probability at `out_hw`, which may be larger than `rgb` (a reduced decode), from the
        network's view of it (`_network_view`); with `snap_edges`, its edges snapped onto `rgb`'s
        (`postprocess.snap_to_edges`) first."""
        prepared = prepare(view, max(view.shape[:2]), self.spec.mean, self.spec.std, self.spec.stride)
        prepared = replace(prepared, original_hw=rgb.shape[:2] if snap_edges else tuple(out_hw))
        tensor = prepared.tensor
        if flip_tta:
            tensor = np.concatenate([tensor, tensor[..., ::-1]])
        out = self._run(np.ascontiguousarray(tensor))[:, 0]
        p = restore(out[0] if not flip_tta else (out[0] + out[1, :, ::-1]) / 2, prepared)
        if snap_edges:
            p = snap_to_edges(p, rgb)
            if p.shape != tuple(out_hw):
                p = cv2.resize(p, tuple(out_hw)[::-1], interpolation=cv2.INTER_LINEAR)
        return p

    def _decode(self, image: ImageInput, input_size: int | None) -> tuple[np.ndarray, tuple[int, int]]:
        """(RGB pixels, displayed (height, width)); a large JPEG decoded at a reduced scale."""

        def decoded_hw(displayed: tuple[int, int]) -> tuple[int, int]:
            # Twice the network's input: the last resize then still averages over several pixels.
            # Decoded just large enough (a DCT scale, then a small resize), egohands_cross14 lost
            # 0.005 IoU with handseg-lite2.
            network = resized_size(*displayed, inference_size(self.spec, displayed, input_size))
            return 2 * network[0], 2 * network[1]

        return load_rgb_reduced(image, decoded_hw, max_pixels=WORK_PIXELS)

    def segment(
        self,
        image: ImageInput,
        refinement: Refinement | None = None,
        *,
        input_size: int | None = None,
        flip_tta: bool = False,
        adapt_size: bool = True,
        find_hands: bool = True,
        finder: FinderOptions | None = None,
        keep: HandChoice = "all",
    ) -> SegmentationResult:
        """Find the hands in one image.

        Args:
            image: a path, a PIL image (any mode) or an HxWx3 uint8 RGB array. A large JPEG
                file is decoded at a reduced scale, at least twice the network's input (see
                `images.load_rgb_reduced`); the results are at its full size all the same.
            refinement: post-processing settings; the defaults of `Refinement` when omitted.
            input_size: the largest long side the network sees (default: the model's input size).
                Larger images are reduced to it; smaller ones keep their own size (thumbnails are
                enlarged to the model's `min_input_size`). More pixels give finer edges on large
                photos at a quadratic cost in time (docs/models.md, Options at inference).
            flip_tta: also run the mirrored image and average (slower, sometimes steadier).
            adapt_size: first find the hands in a quick pass at FIND_SIZE and, where the largest
                spans much of the image, let the network see it smaller (a hand filling a large
                photo is otherwise missed); False runs one pass at the size above. Where the
                finder found hands, no quick pass is run (they are segmented in crops of their own).
            find_hands: first find each hand (`handseg_core.finder`: box, landmarks) and segment
                it in a crop of its own with the model's per-hand network, which knows from the
                landmarks which skin is the hand; hands the finder misses come from the whole
                image. False (or a model without a per-hand network): the whole image only.
            finder: the finder's settings (`FinderOptions`; default: its defaults).
            keep: which hands the result keeps (`SegmentationResult.keep`): "all", "largest",
                "left", "right" or N, the N largest.

        Raises:
            ImageError: the image cannot be read.
            OptionError: an option out of its range (input_size not a whole number from 1 to
                MAX_INPUT_SIZE, refinement or finder not of their types).
            ModelError: the session was closed.
        """
        check_input_size(input_size)
        if refinement is not None and not isinstance(refinement, Refinement):
            raise OptionError(f"refinement must be a handseg_core.Refinement, got {type(refinement).__name__}")
        if finder is not None and not isinstance(finder, FinderOptions):
            raise OptionError(f"finder must be a handseg_core.finder.FinderOptions, got {type(finder).__name__}")
        refinement = refinement or Refinement()
        parse_choice(keep)  # a wrong choice fails before the work
        rgb, displayed = self._decode(image, input_size)
        if displayed[0] * displayed[1] <= WORK_PIXELS:
            return self._segment(rgb, displayed, refinement, input_size, flip_tta, adapt_size, find_hands,
                                 finder).keep(keep)
        from handseg_core.large import UpsampledResult

        work = self._segment(rgb, rgb.shape[:2], refinement, input_size, flip_tta, adapt_size, find_hands, finder,
                             network_hw=displayed)
        return UpsampledResult(work.keep(keep), displayed)

    def segment_video(self, frames, refinement: Refinement | None = None, *, stabilisation="default",
                      keep: HandChoice = "all", workers: int = 1, **options):
        """Segment frames of a video in order (HxWx3 uint8 RGB arrays): an iterator of
        `handseg_core.video.VideoFrame`, each with its result, its hands' track numbers and
        which were kept through a miss. The masks are stabilised along the motion unless
        `stabilisation` is None; see `handseg_core.video.segment_video` for the arguments."""
        from handseg_core import video

        if isinstance(stabilisation, str) and stabilisation == "default":
            stabilisation = video.Stabilisation()
        return video.segment_video(self, frames, refinement, stabilisation=stabilisation, keep=keep,
                                   workers=workers, **options)

    def _segment(self, rgb, displayed, refinement, input_size, flip_tta, adapt_size, find_hands, finder,
                 network_hw=None) -> SegmentationResult:
        """The result at `displayed` (height, width) from the decoded pixels `rgb`; the network's
        input size is chosen for an image of `network_hw` (default: `displayed`)."""
        size = inference_size(self.spec, network_hw or displayed, input_size)
        segmenter = self._hand_segmenter() if find_hands else None
        if segmenter is None:
            view = self._network_view(rgb, size, adapt_size)
            probability = self._probability(rgb, view, flip_tta, displayed, refinement.snap_edges)
            mask, alpha = refine(probability, refinement)
            hands = per_hand.split(mask, [], np.full(mask.shape, -1, np.int16), probability)
            return SegmentationResult(mask, probability, alpha, self.spec.name, tuple(hands))
        found = load_finder(threads=self._threads).find(rgb, finder)
        # Found hands are segmented in crops fitted to them, so the whole image then needs no quick
        # pass to fit its size to the hands: it is for those the finder missed (dev sets: the
        # same IoU, 11k Hands photos enlarged 5x +0.002; docs/models.md).
        view = self._network_view(rgb, size, adapt_size and not found)
        whole = self._probability(rgb, view, flip_tta, rgb.shape[:2])
        pastes = segmenter.probabilities(rgb, found)
        probability = per_hand.combine(whole, pastes)
        if refinement.snap_edges:
            probability = snap_to_edges(probability, rgb)
        owner = per_hand.owners(pastes, rgb.shape[:2])
        if probability.shape != tuple(displayed):
            size = tuple(displayed)[::-1]
            probability = cv2.resize(probability, size, interpolation=cv2.INTER_LINEAR)
            owner = cv2.resize(owner, size, interpolation=cv2.INTER_NEAREST)
        mask, alpha = refine(probability, refinement)
        factor = (displayed[1] / rgb.shape[1], displayed[0] / rgb.shape[0])
        hands = per_hand.split(mask, per_hand.scaled(found, factor), owner, probability)
        return SegmentationResult(mask, probability, alpha, self.spec.name, tuple(hands))


_cache: dict[tuple, HandSegmenter] = {}
_cache_lock = threading.Lock()


def _forget(session: HandSegmenter) -> None:
    with _cache_lock:
        for key, value in list(_cache.items()):
            if value is session:
                del _cache[key]


def load_model(
    name_or_path: str | os.PathLike | None = None, *, device: Device = "auto", threads: int | None = None
) -> HandSegmenter:
    """Load a model by registry name or ONNX path (default: the packaged default model).

    Sessions are cached: asking again for the same model and device returns the same session.

    Raises:
        ModelError: unknown name, missing or unloadable file, or no such device.
        ChecksumError: the file does not match its recorded checksum.
    """
    spec = registry.find(name_or_path)
    path = spec.path.resolve()
    try:
        stat = path.stat()
    except OSError:
        raise ModelError(f"{spec.path}: model file missing; reinstall handseg or export the model again") from None
    # The file's size and time are part of the key: a replaced or damaged file is read (and
    # verified) again instead of being served from the cache. So is the spec: two registry
    # entries may share a file with other settings (input size, hand limits).
    key = (str(path), stat.st_size, stat.st_mtime_ns, device, threads, spec)
    with _cache_lock:
        session = _cache.get(key)
        if session is None:
            session = HandSegmenter(spec, device=device, threads=threads)
            for old in [k for k in _cache if k[0] == key[0] and k[3:] == key[3:]]:
                del _cache[old]
            _cache[key] = session
    return session
