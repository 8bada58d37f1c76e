"""Batched augmentation on the training device.

All geometry goes through one affine warp per sample (`F.grid_sample`), so flips, rotations,
scaling and crops cost one pass over the batch, on the GPU when there is one. Hand photos are
pasted onto backgrounds and faces with the same warp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.6, 2.0)  # zoom of a crop relative to the stored frame
    max_rotation: float = 30.0  # degrees
    flip: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    hue: float = 0.06  # fraction of a full turn
    gamma: float = 0.3
    blur: float = 0.2  # probability
    noise: float = 0.3  # probability
    hand_size: tuple[float, float] = (0.35, 1.3)  # hand photo side / canvas short side
    hand_rotation: float = 40.0
    wrist_at_edge: float = 0.6  # probability the hand photo's bottom (wrist) meets the canvas edge
    skin_gain: tuple[float, float] = (0.45, 1.2)  # brightness gain on pasted hands (skin tones)
    no_hand: float = 0.12  # probability a composite is a pure negative (background or face)
    quarter_turns: float = 0.25  # probability of a 90/180/270 degree turn of a composite
    own_background: float = 0.0  # probability a hand photo keeps its own background (white paper, black cloth)
    motion_blur: float = 0.0  # probability of a straight motion blur (hands move in video frames)
    motion_length: tuple[float, float] = (3.0, 15.0)  # its length in pixels of the crop


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def _log_uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(low), math.log(high), gen, device))


def affine_theta(
    out_hw: tuple[int, int],
    in_hw: tuple[int, int],
    zoom: torch.Tensor,
    angle_deg: torch.Tensor,
    centre_px: torch.Tensor,
    flip: torch.Tensor,
) -> torch.Tensor:
    """Theta for `F.affine_grid` mapping an output canvas onto an input image.

    zoom: output pixels per input pixel; centre_px: [B, 2] input point (x, y) relative to the
    input's centre that lands on the output's centre; flip: [B] bool, mirror left-right.
    """
    h_out, w_out = out_hw
    h_in, w_in = in_hw
    a = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a), torch.sin(a)
    b = zoom.shape[0]
    theta = torch.zeros((b, 2, 3), device=zoom.device, dtype=torch.float32)
    sx = torch.where(flip, -1.0, 1.0) * (w_out / 2) / zoom
    sy = (h_out / 2) / zoom
    theta[:, 0, 0] = cos * sx * 2 / w_in
    theta[:, 0, 1] = -sin * sy * 2 / w_in
    theta[:, 1, 0] = sin * sx * 2 / h_in
    theta[:, 1, 1] = cos * sy * 2 / h_in
    theta[:, 0, 2] = centre_px[:, 0] * 2 / w_in
    theta[:, 1, 2] = centre_px[:, 1] * 2 / h_in
    return theta


def warp(source: torch.Tensor, theta: torch.Tensor, out_hw: tuple[int, int], padding: str) -> torch.Tensor:
    grid = F.affine_grid(theta, [source.shape[0], source.shape[1], *out_hw], align_corners=False)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def random_crops(
    frames: torch.Tensor, index: torch.Tensor, out_hw: tuple[int, int], cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of stored frames (uint8 [N, 4, H, W], mask in channel 3) with flips, rotation, scale.

    Returns images float [B, 3, h, w] in 0..1 and masks float [B, 1, h, w] in {0, 1}.
    """
    device = frames.device
    b = index.shape[0]
    h_in, w_in = frames.shape[-2:]
    zoom = _log_uniform(b, *cfg.scale, gen, device)
    angle = _uniform(b, -cfg.max_rotation, cfg.max_rotation, gen, device)
    centre = torch.stack(
        [_uniform(b, -w_in / 2, w_in / 2, gen, device), _uniform(b, -h_in / 2, h_in / 2, gen, device)], 1
    )
    flip = torch.rand(b, generator=gen, device=device) < cfg.flip
    theta = affine_theta(out_hw, (h_in, w_in), zoom, angle, centre, flip)
    sample = warp(frames[index].float() / 255, theta, out_hw, "reflection")
    return sample[:, :3], (sample[:, 3:] > 0.5).float()


def composites(
    hands: torch.Tensor,
    backgrounds: torch.Tensor,
    out_hw: tuple[int, int],
    count: int,
    cfg: AugmentConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand photos (uint8 [N, 4, S, S], mask as alpha) pasted onto random crops of backgrounds.
    With a fifth channel, that is the target instead of the alpha (a forearm pasted, but
    labelled background: research.forearms).

    Backgrounds (uint8 [M, 3, H, W]) include faces, so a face under a hand is background: the
    model learns that skin is not enough. Wrists in the hand photos are cut straight at the
    photo's bottom edge, so most pastes put that edge at or past the canvas edge.
    """
    device = hands.device
    h, w = out_hw
    bg_index = torch.randint(0, backgrounds.shape[0], (count,), generator=gen, device=device)
    bh, bw = backgrounds.shape[-2:]
    bg_zoom = _log_uniform(count, max(h / bh, w / bw), 2.5 * max(h / bh, w / bw), gen, device)
    slack_x = (bw - w / bg_zoom).clamp(min=0) / 2
    slack_y = (bh - h / bg_zoom).clamp(min=0) / 2
    bg_centre = torch.stack(
        [(torch.rand(count, generator=gen, device=device) * 2 - 1) * slack_x,
         (torch.rand(count, generator=gen, device=device) * 2 - 1) * slack_y], 1
    )
    bg_flip = torch.rand(count, generator=gen, device=device) < 0.5
    bg_theta = affine_theta(out_hw, (bh, bw), bg_zoom, torch.zeros(count, device=device), bg_centre, bg_flip)
    canvas = warp(backgrounds[bg_index].float() / 255, bg_theta, out_hw, "reflection")

    hand_index = torch.randint(0, hands.shape[0], (count,), generator=gen, device=device)
    s = hands.shape[-1]
    side = _uniform(count, *cfg.hand_size, gen, device) * min(h, w)
    zoom = side / s
    angle = _uniform(count, -cfg.hand_rotation, cfg.hand_rotation, gen, device)
    cx = _uniform(count, -0.3 * w, 0.3 * w, gen, device)
    free_y = _uniform(count, -0.25 * h, 0.25 * h, gen, device)
    edge_y = h / 2 - side / 2 + _uniform(count, 0.0, 0.2, gen, device) * side
    at_edge = torch.rand(count, generator=gen, device=device) < cfg.wrist_at_edge
    cy = torch.where(at_edge, edge_y, free_y)
    # Theta maps canvas -> hand photo: invert the paste (rotate back about the hand's centre).
    flip = torch.rand(count, generator=gen, device=device) < 0.5
    a = torch.deg2rad(angle)
    cos, sin = torch.cos(a), torch.sin(a)
    fx = torch.where(flip, -cx, cx)
    centre_in_hand = -torch.stack([cos * fx + sin * cy, -sin * fx + cos * cy], 1) / zoom[:, None]
    theta = affine_theta(out_hw, (s, s), zoom, -angle, centre_in_hand, flip)
    pasted = warp(hands[hand_index].float() / 255, theta, out_hw, "zeros")
    rgb, alpha, label = pasted[:, :3], pasted[:, 3:4], pasted[:, -1:]
    # Some photos keep their own background, stretched from the photo's edges over the canvas:
    # a large hand on plain paper or cloth is what close-ups look like, and pasted hands never
    # show it (the packaged models missed such hands once they spanned 300 px).
    # (drawn only when asked for, so that older configs see the same random stream)
    own = torch.zeros(count, dtype=torch.bool, device=device)
    if cfg.own_background > 0:
        own = torch.rand(count, generator=gen, device=device) < cfg.own_background
    if own.any():
        whole = warp(hands[hand_index[own]].float() / 255, theta[own], out_hw, "border")
        rgb[own], alpha[own], label[own] = whole[:, :3], whole[:, 3:4], whole[:, -1:]
        canvas[own] = whole[:, :3]

    gain = _uniform(count, *cfg.skin_gain, gen, device)[:, None, None, None]
    tint = 1 + (torch.rand((count, 3, 1, 1), generator=gen, device=device) - 0.5) * 0.16
    rgb = (rgb * gain * tint).clamp(0, 1)
    keep = (torch.rand(count, generator=gen, device=device) >= cfg.no_hand) | own
    alpha = alpha * keep.float()[:, None, None, None]
    image = canvas * (1 - alpha) + rgb * alpha
    mask = ((label * keep.float()[:, None, None, None]) > 0.5).float()

    turns = torch.rand(count, generator=gen, device=device) < cfg.quarter_turns
    if h == w and turns.any():
        k = int(torch.randint(1, 4, (1,), generator=gen, device=device))
        image[turns] = torch.rot90(image[turns], k, dims=(2, 3))
        mask[turns] = torch.rot90(mask[turns], k, dims=(2, 3))
    return image, mask


def photometric(images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Colour shifts, gamma, blur and sensor noise, each drawn per sample. Input and output 0..1."""
    device = images.device
    b = images.shape[0]

    def per_sample(low: float, high: float) -> torch.Tensor:
        return _uniform(b, low, high, gen, device)[:, None, None, None]

    x = images * per_sample(1 - cfg.brightness, 1 + cfg.brightness)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * per_sample(1 - cfg.contrast, 1 + cfg.contrast) + mean
    grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = grey + (x - grey) * per_sample(1 - cfg.saturation, 1 + cfg.saturation)
    x = _rotate_hue(x, _uniform(b, -cfg.hue, cfg.hue, gen, device) * 2 * math.pi)
    x = x.clamp(0, 1) ** per_sample(1 - cfg.gamma, 1 + cfg.gamma)
    blurred = torch.rand(b, generator=gen, device=device) < cfg.blur
    if blurred.any():
        x[blurred] = F.avg_pool2d(x[blurred], 3, stride=1, padding=1, count_include_pad=False)
    noisy = (torch.rand(b, generator=gen, device=device) < cfg.noise).float()[:, None, None, None]
    sigma = per_sample(0.0, 0.04) * noisy
    x = x + torch.randn(x.shape, generator=gen, device=device) * sigma
    if cfg.motion_blur > 0:  # drawn only when asked for: older configs keep their random stream
        moving = torch.rand(b, generator=gen, device=device) < cfg.motion_blur
        if moving.any():
            n = int(moving.sum())
            length = _uniform(n, *cfg.motion_length, gen, device)
            angle = _uniform(n, 0.0, math.pi, gen, device)
            x[moving] = motion_blurred(x[moving], length, angle)
    return x.clamp(0, 1)


def motion_kernels(length: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """[N, K, K] kernels, each a straight line of `length` px at `angle` (radians) through the
    centre, summing to 1; K the smallest odd size that holds the longest."""
    size = 2 * int(math.ceil(float(length.max()) / 2)) + 1
    steps = torch.linspace(-0.5, 0.5, 4 * size, device=length.device)
    centre = size // 2
    xs = (centre + steps[None] * (length * torch.cos(angle))[:, None]).round().long().clamp(0, size - 1)
    ys = (centre + steps[None] * (length * torch.sin(angle))[:, None]).round().long().clamp(0, size - 1)
    kernels = torch.zeros((length.shape[0], size * size), device=length.device)
    kernels.scatter_add_(1, ys * size + xs, torch.ones_like(xs, dtype=kernels.dtype))
    kernels = kernels.view(-1, size, size)
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def motion_blurred(images: torch.Tensor, length: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """`images` [N, C, H, W], each blurred along a straight line (`motion_kernels`), edges
    replicated."""
    n, c, h, w = images.shape
    kernels = motion_kernels(length, angle).to(images.dtype)
    k = kernels.shape[-1]
    padded = F.pad(images.reshape(1, n * c, h, w), (k // 2,) * 4, mode="replicate")
    weight = kernels.repeat_interleave(c, 0)[:, None]
    return F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate chroma in YIQ space by `angle` radians per sample."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device
    )
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros((x.shape[0], 3, 3), device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    m = from_yiq @ rot @ to_yiq
    return torch.einsum("bij,bjhw->bihw", m, x)
