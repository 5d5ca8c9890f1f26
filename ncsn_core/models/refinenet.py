"""The paper's score network: a 4-cascade RefineNet with dilated convolutions and CondInstanceNorm++
(Song & Ermon 2019, Appendix A; layer for layer as ermongroup/ncsn's CondRefineNetDilated)."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .normalization import CondInstanceNormPlus


def conv3x3(cin: int, cout: int, bias: bool = False, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


class ConvMeanPool(nn.Module):
    """Convolution then 2x2 mean pooling: the encoder's only real downsampling."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x), 2)


class CondResBlock(nn.Module):
    """Pre-activation residual block: norm-ELU-conv twice. 'down' without dilation halves H and W
    (conv then mean pool); with dilation the resolution is kept and the receptive field grows instead.
    dropout > 0 drops features before the second conv while training (Ho et al. 2020's place; compact model only)."""

    def __init__(self, cin: int, cout: int, num_classes: int, down: bool = False, dilation: Optional[int] = None,
                 cond_dim: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        d = dilation or 1
        self.dropout = dropout
        self.norm1 = CondInstanceNormPlus(cin, num_classes, cond_dim)
        if down and dilation is None:
            self.conv1 = nn.Conv2d(cin, cin, 3, padding=1)
            self.norm2 = CondInstanceNormPlus(cin, num_classes, cond_dim)
            self.conv2 = ConvMeanPool(cin, cout, 3)
            self.shortcut = ConvMeanPool(cin, cout, 1)
        else:
            mid = cin if down else cout
            self.conv1 = conv3x3(cin, mid, bias=True, dilation=d)
            self.norm2 = CondInstanceNormPlus(mid, num_classes, cond_dim)
            self.conv2 = conv3x3(mid, cout, bias=True, dilation=d)
            needs_shortcut = down or cin != cout
            self.shortcut = conv3x3(cin, cout, bias=True, dilation=d) if needs_shortcut else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # ELU in place on the norm's output (nothing else reads it): backward keeps one tensor, not two
        h = self.conv1(F.elu(self.norm1(x, labels), inplace=True))
        h = F.elu(self.norm2(h, labels), inplace=True)
        if self.dropout:
            h = F.dropout(h, self.dropout, self.training)
        h = self.conv2(h)
        return h + (x if self.shortcut is None else self.shortcut(x))


class CondRCU(nn.Module):
    """Residual conv units: n_blocks x (n_stages x norm-ELU-conv) with a skip around each block."""

    def __init__(self, features: int, n_blocks: int, n_stages: int, num_classes: int):
        super().__init__()
        self.norms = nn.ModuleList(CondInstanceNormPlus(features, num_classes) for _ in range(n_blocks * n_stages))
        self.convs = nn.ModuleList(conv3x3(features, features) for _ in range(n_blocks * n_stages))
        self.n_blocks, self.n_stages = n_blocks, n_stages

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        for b in range(self.n_blocks):
            residual = x
            for s in range(self.n_stages):
                k = b * self.n_stages + s
                x = self.convs[k](F.elu(self.norms[k](x, labels), inplace=True))
            x = x + residual
        return x


class CondMSF(nn.Module):
    """Multi-resolution fusion: norm + conv per input, bilinear upsampling (align_corners=True), sum."""

    def __init__(self, in_planes: List[int], features: int, num_classes: int):
        super().__init__()
        self.norms = nn.ModuleList(CondInstanceNormPlus(c, num_classes) for c in in_planes)
        self.convs = nn.ModuleList(conv3x3(c, features, bias=True) for c in in_planes)

    def forward(self, xs: List[torch.Tensor], labels: torch.Tensor, shape) -> torch.Tensor:
        out = 0
        for x, norm, conv in zip(xs, self.norms, self.convs):
            out = out + F.interpolate(conv(norm(x, labels)), size=shape, mode="bilinear", align_corners=True)
        return out


class CondCRP(nn.Module):
    """Chained residual pooling with 5x5 average pools (stride 1)."""

    def __init__(self, features: int, n_stages: int, num_classes: int):
        super().__init__()
        self.norms = nn.ModuleList(CondInstanceNormPlus(features, num_classes) for _ in range(n_stages))
        self.convs = nn.ModuleList(conv3x3(features, features) for _ in range(n_stages))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.elu(x)
        path = x
        for norm, conv in zip(self.norms, self.convs):
            path = conv(F.avg_pool2d(norm(path, labels), 5, stride=1, padding=2, count_include_pad=True))
            x = path + x
        return x


class CondRefineBlock(nn.Module):
    def __init__(self, in_planes: List[int], features: int, num_classes: int, start: bool = False, end: bool = False):
        super().__init__()
        self.adapt = nn.ModuleList(CondRCU(c, 2, 2, num_classes) for c in in_planes)
        self.msf = None if start else CondMSF(in_planes, features, num_classes)
        self.crp = CondCRP(features, 2, num_classes)
        self.out = CondRCU(features, 3 if end else 1, 2, num_classes)

    def forward(self, xs: List[torch.Tensor], labels: torch.Tensor, shape) -> torch.Tensor:
        hs = [a(x, labels) for a, x in zip(self.adapt, xs)]
        h = hs[0] if self.msf is None else self.msf(hs, labels, shape)
        return self.out(self.crp(h, labels), labels)


class RefineNetDilated(nn.Module):
    """s(x, i) for x in [0, 1], (B, C, H, W) -> (B, C, H, W). The output is NOT divided by sigma unless
    scale_by_sigma is set (the paper's network conditions only through CondInstanceNorm++)."""

    def __init__(self, channels: int, ngf: int, num_classes: int):
        super().__init__()
        n2 = 2 * ngf
        self.begin_conv = nn.Conv2d(channels, ngf, 3, padding=1)
        self.res1 = nn.ModuleList([CondResBlock(ngf, ngf, num_classes), CondResBlock(ngf, ngf, num_classes)])
        self.res2 = nn.ModuleList([CondResBlock(ngf, n2, num_classes, down=True), CondResBlock(n2, n2, num_classes)])
        self.res3 = nn.ModuleList([CondResBlock(n2, n2, num_classes, down=True, dilation=2),
                                   CondResBlock(n2, n2, num_classes, dilation=2)])
        self.res4 = nn.ModuleList([CondResBlock(n2, n2, num_classes, down=True, dilation=4),
                                   CondResBlock(n2, n2, num_classes, dilation=4)])
        self.refine1 = CondRefineBlock([n2], n2, num_classes, start=True)
        self.refine2 = CondRefineBlock([n2, n2], n2, num_classes)
        self.refine3 = CondRefineBlock([n2, n2], ngf, num_classes)
        self.refine4 = CondRefineBlock([ngf, ngf], ngf, num_classes, end=True)
        self.normalizer = CondInstanceNormPlus(ngf, num_classes)
        self.end_conv = nn.Conv2d(ngf, channels, 3, padding=1)

    @staticmethod
    def _stage(blocks: nn.ModuleList, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        for b in blocks:
            x = b(x, labels)
        return x

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.begin_conv(2 * x - 1)  # data in [0, 1]; the network works on [-1, 1]
        l1 = self._stage(self.res1, h, labels)
        l2 = self._stage(self.res2, l1, labels)
        l3 = self._stage(self.res3, l2, labels)
        l4 = self._stage(self.res4, l3, labels)
        r = self.refine1([l4], labels, l4.shape[2:])
        r = self.refine2([l3, r], labels, l3.shape[2:])
        r = self.refine3([l2, r], labels, l2.shape[2:])
        r = self.refine4([l1, r], labels, l1.shape[2:])
        return self.end_conv(F.elu(self.normalizer(r, labels), inplace=True))
