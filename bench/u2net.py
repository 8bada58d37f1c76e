"""U2-Net and U2-Netp, the networks rembg runs, written from their paper for speed references.

Qin, Zhang, Huang, Dehghan, Zaiane, Jagersand: "U2-Net: Going deeper with nested U-structure for
salient object detection", Pattern Recognition 106 (2020). Built from the paper's description
(section 3 and table 1), not from any published code; weights are random, which is all a timing
needs.

A residual U-block RSU-L(C_in, M, C_out) maps its input to C_out channels, runs a small U-Net of
depth L with M channels on that, and adds the two. RSU-4F replaces pooling by dilation, for the
deepest, smallest feature maps. The outer U-Net has six encoder stages and five decoder stages;
each decoder stage (and the last encoder stage) gives a side saliency map, and a 1x1 convolution
fuses the six maps into the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (kind, C_in, M, C_out) for En_1..En_6 and De_5..De_1, as in table 1 of the paper.
U2NET_STAGES = {
    "encoder": [(7, 3, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512), ("4F", 512, 256, 512), ("4F", 512, 256, 512)],
    "decoder": [("4F", 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64), (7, 128, 16, 64)],
}
U2NETP_STAGES = {
    "encoder": [(7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64), ("4F", 64, 16, 64), ("4F", 64, 16, 64)],
    "decoder": [("4F", 128, 16, 64), (4, 128, 16, 64), (5, 128, 16, 64), (6, 128, 16, 64), (7, 128, 16, 64)],
}


class ConvBnRelu(nn.Sequential):
    """3x3 convolution (dilated by `dilation`, same size out), batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, dilation: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of height `height`: `height - 1` scales (halved by max pooling), with a
    dilated convolution at the bottom instead of one more pooling."""

    def __init__(self, height: int, c_in: int, mid: int, c_out: int):
        super().__init__()
        self.input = ConvBnRelu(c_in, c_out)
        self.down = nn.ModuleList([ConvBnRelu(c_out, mid)] + [ConvBnRelu(mid, mid) for _ in range(height - 2)])
        self.bottom = ConvBnRelu(mid, mid, dilation=2)
        self.up = nn.ModuleList([ConvBnRelu(2 * mid, mid) for _ in range(height - 2)] + [ConvBnRelu(2 * mid, c_out)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.input(x)
        skips = []
        h = residual
        for i, conv in enumerate(self.down):
            if i:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for conv, skip in zip(self.up, reversed(skips)):
            if h.shape[2:] != skip.shape[2:]:
                h = _upsample_to(h, skip)
            h = conv(torch.cat([h, skip], 1))
        return h + residual


class RSU4F(nn.Module):
    """RSU-4 without pooling: dilations 1, 2, 4, 8 down and 4, 2, 1 up, at one resolution."""

    def __init__(self, c_in: int, mid: int, c_out: int):
        super().__init__()
        self.input = ConvBnRelu(c_in, c_out)
        self.down = nn.ModuleList([ConvBnRelu(c_out, mid, 1), ConvBnRelu(mid, mid, 2), ConvBnRelu(mid, mid, 4)])
        self.bottom = ConvBnRelu(mid, mid, 8)
        self.up = nn.ModuleList([ConvBnRelu(2 * mid, mid, 4), ConvBnRelu(2 * mid, mid, 2), ConvBnRelu(2 * mid, c_out, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.input(x)
        skips = []
        h = residual
        for conv in self.down:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for conv, skip in zip(self.up, reversed(skips)):
            h = conv(torch.cat([h, skip], 1))
        return h + residual


def _block(kind, c_in: int, mid: int, c_out: int) -> nn.Module:
    return RSU4F(c_in, mid, c_out) if kind == "4F" else RSU(kind, c_in, mid, c_out)


class U2Net(nn.Module):
    """The two-level nested U-Net. Returns the fused saliency map and the six side maps, each a
    probability at the input's size (the fused one is what rembg uses)."""

    def __init__(self, stages: dict = U2NET_STAGES):
        super().__init__()
        self.encoder = nn.ModuleList([_block(*s) for s in stages["encoder"]])
        self.decoder = nn.ModuleList([_block(*s) for s in stages["decoder"]])
        side_channels = [s[3] for s in reversed(stages["decoder"])] + [stages["encoder"][-1][3]]
        self.side = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in side_channels])
        self.fuse = nn.Conv2d(len(side_channels), 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = []
        h = x
        for i, stage in enumerate(self.encoder):
            if i:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
            h = stage(h)
            features.append(h)
        decoded = [h]  # En_6 gives the deepest side map
        for stage, skip in zip(self.decoder, reversed(features[:-1])):
            h = stage(torch.cat([_upsample_to(h, skip), skip], 1))
            decoded.append(h)
        # side maps in the paper's order: De_1, De_2, ..., De_5, En_6
        sides = [_upsample_to(conv(f), x) for conv, f in zip(self.side, reversed(decoded))]
        fused = self.fuse(torch.cat(sides, 1))
        return tuple(torch.sigmoid(s) for s in [fused, *sides])


def u2net() -> U2Net:
    """U2-Net (about 44 M parameters, 176 MB)."""
    return U2Net(U2NET_STAGES)


def u2netp() -> U2Net:
    """U2-Netp, the paper's small version (about 1.1 M parameters, 4.7 MB)."""
    return U2Net(U2NETP_STAGES)
