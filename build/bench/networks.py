#!/usr/bin/python3
"""PyTorch twins of MLNetMedSeg.Segmentation.Networks (src/MLNetMedSeg/Segmentation/Networks), layer for layer:
the same modules, widths, kernel sizes, biases and forward order, so that build/bench.sh compares like with like
(both sides print their parameter counts). Default options only need what the benchmark uses; the constructors take
the same knobs as SegmentationNetworkOptions where the benchmark could vary them.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(i, o, k=3, p=1, d=1):
    return nn.Sequential(nn.Conv2d(i, o, k, padding=p, dilation=d, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


def double_conv(i, o):
    return nn.Sequential(
        nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
        nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


def resize(x, h, w):
    if x.shape[2] == h and x.shape[3] == w:
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


class PlainEncoder(nn.Module):
    def __init__(self, cin, widths):
        super().__init__()
        self.out_channels = list(widths)
        self.output_stride = 2 ** (len(widths) - 1)
        chans = [cin] + list(widths)
        self.stages = nn.ModuleList([double_conv(chans[k], chans[k + 1]) for k in range(len(widths))])

    def forward(self, x):
        feats = []
        for k, s in enumerate(self.stages):
            if k > 0:
                x = F.max_pool2d(x, 2)
            x = s(x)
            feats.append(x)
        return feats


class BasicBlock(nn.Module):
    """torchvision's BasicBlock with optional atrous 3x3 convs (smp's dilated layout)."""

    def __init__(self, inplanes, planes, stride, dilation, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
                           if downsample else None)

    def forward(self, x):
        o = self.relu(self.bn1(self.conv1(x)))
        o = self.bn2(self.conv2(o))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(o + identity)


class ResNetEncoder(nn.Module):
    """torchvision's resnet18/34 layout (same state-dict keys, no avgpool/fc); stages: stem, layer1..layer4."""

    def __init__(self, cin, widths=(64, 64, 128, 256, 512), blocks=(2, 2, 2, 2), output_stride=32):
        super().__init__()
        self.out_channels = list(widths)
        self.conv1 = nn.Conv2d(cin, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes, stride = widths[0], 4
        self.layer_names = []
        for k in range(1, len(widths)):
            planes = widths[k]
            ls = 1 if k == 1 else 2
            d = {(16, 4): 2, (8, 3): 2, (8, 4): 4}.get((output_stride, k), 1)
            layers = []
            for b in range(blocks[k - 1]):
                s = ls if (b == 0 and d == 1) else 1
                down = b == 0 and (ls != 1 or inplanes != planes)
                layers.append(BasicBlock(inplanes if b == 0 else planes, planes, s, d, down))
            inplanes = planes
            if d == 1:
                stride *= ls
            setattr(self, f"layer{k}", nn.Sequential(*layers))
            self.layer_names.append(f"layer{k}")
        self.output_stride = stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        feats = [x]
        x = self.maxpool(x)
        for n in self.layer_names:
            x = getattr(self, n)(x)
            feats.append(x)
        return feats


class SegNet(nn.Module):
    """Pads to a multiple of the encoder's output stride (zeros, bottom/right) and crops back, as the C# base class."""

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        m = self.encoder.output_stride
        ph, pw = (m - h % m) % m, (m - w % m) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        y = self.decode(self.encoder(x), x.shape[2], x.shape[3])
        return y[:, :, :h, :w]


class UNetBlock(nn.Module):
    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = double_conv(cout + cskip, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([self.up(x), skip], 1))


class UNet(SegNet):
    def __init__(self, cin=3, classes=1, widths=(32, 64, 128, 256, 512)):
        super().__init__()
        self.encoder = PlainEncoder(cin, widths)
        n = len(widths) - 1
        dec = [widths[n - 1 - j] for j in range(n)]
        blocks, prev = [], widths[n]
        for j in range(n):
            blocks.append(UNetBlock(prev, widths[n - 1 - j], dec[j]))
            prev = dec[j]
        self.decoder = nn.Module()
        self.decoder.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(prev, classes, 1)

    def decode(self, f, h, w):
        n = len(f) - 1
        x = f[n]
        for j, b in enumerate(self.decoder.blocks):
            x = b(x, f[n - 1 - j])
        return resize(self.head(x), h, w)


class NestedBlock(nn.Module):
    def __init__(self, cdeep, cdense, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cdeep, cout, 2, stride=2)
        self.conv = double_conv(cdense + cout, cout)

    def forward(self, deeper, dense):
        return self.conv(torch.cat([dense, self.up(deeper)], 1))


class UNetPlusPlus(SegNet):
    def __init__(self, cin=3, classes=1, widths=(32, 64, 128, 256, 512), deep_supervision=False):
        super().__init__()
        self.encoder = PlainEncoder(cin, widths)
        L = self.levels = len(widths) - 1
        e, c = list(widths), list(widths[:L])
        self.decoder = nn.Module()
        for j in range(1, L + 1):
            for i in range(0, L - j + 1):
                src = e[i + 1] if j == 1 else c[i + 1]
                setattr(self.decoder, f"x{i}_{j}", NestedBlock(src, e[i] + (j - 1) * c[i], c[i]))
        self.ds = deep_supervision
        if deep_supervision:
            self.heads = nn.ModuleList([nn.Conv2d(c[0], classes, 1) for _ in range(L)])
        else:
            self.head = nn.Conv2d(c[0], classes, 1)

    def decode(self, f, h, w):
        L = self.levels
        X = {(i, 0): f[i] for i in range(L + 1)}
        for j in range(1, L + 1):
            for i in range(0, L - j + 1):
                dense = [X[(i, k)] for k in range(j)]
                X[(i, j)] = getattr(self.decoder, f"x{i}_{j}")(X[(i + 1, j - 1)], dense[0] if len(dense) == 1 else torch.cat(dense, 1))
        if not self.ds:
            return resize(self.head(X[(0, L)]), h, w)
        outs = [resize(hd(X[(0, j + 1)]), h, w) for j, hd in enumerate(self.heads)]
        return torch.stack(outs, 0).mean(0) if self.training else outs[-1]


class LinkNetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cin // 4
        self.add_module("0", conv_bn_relu(cin, mid, 1, 0))
        self.add_module("1", nn.Sequential(
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True)))
        self.add_module("2", conv_bn_relu(mid, cout, 1, 0))

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class LinkNet(SegNet):
    def __init__(self, cin=3, classes=1, widths=(64, 64, 128, 256, 512), blocks=(2, 2, 2, 2), final=32):
        super().__init__()
        self.encoder = ResNetEncoder(cin, widths, blocks)
        n = len(widths) - 1
        self.decoder = nn.Module()
        self.decoder.blocks = nn.ModuleList([LinkNetBlock(widths[k], widths[k - 1]) for k in range(n, 0, -1)] + [LinkNetBlock(widths[0], final)])
        self.head = nn.Conv2d(final, classes, 1)

    def decode(self, f, h, w):
        n = len(f) - 1
        x = f[n]
        for k in range(n):
            x = self.decoder.blocks[k](x) + f[n - 1 - k]
        x = self.decoder.blocks[n](x)
        return resize(self.head(x), h, w)


class ASPP(nn.Module):
    def __init__(self, cin, cout, rates=(6, 12, 18), dropout=0.5):
        super().__init__()
        self.convs = nn.ModuleList([conv_bn_relu(cin, cout, 1, 0)] + [conv_bn_relu(cin, cout, 3, r, r) for r in rates])
        self.pool = nn.Conv2d(cin, cout, 1)
        self.project = nn.Sequential(nn.Conv2d(cout * (len(rates) + 2), cout, 1, bias=False), nn.BatchNorm2d(cout),
                                     nn.ReLU(inplace=True), nn.Dropout(dropout))

    def forward(self, x):
        b = [c(x) for c in self.convs]
        p = torch.relu(self.pool(F.adaptive_avg_pool2d(x, 1)))
        b.append(p.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(b, 1))


class DeepLabV3Plus(SegNet):
    def __init__(self, cin=3, classes=1, widths=(64, 64, 128, 256, 512), blocks=(2, 2, 2, 2), output_stride=16,
                 width=256, low=48, rates=(6, 12, 18), dropout=0.5):
        super().__init__()
        self.encoder = ResNetEncoder(cin, widths, blocks, output_stride)
        self.decoder = nn.Module()
        self.decoder.aspp = ASPP(widths[-1], width, rates, dropout)
        self.decoder.low = conv_bn_relu(widths[1], low, 1, 0)
        self.decoder.fuse = nn.Sequential(conv_bn_relu(width + low, width), conv_bn_relu(width, width))
        self.head = nn.Conv2d(width, classes, 1)

    def decode(self, f, h, w):
        low = self.decoder.low(f[1])
        a = resize(self.decoder.aspp(f[-1]), low.shape[2], low.shape[3])
        x = self.decoder.fuse(torch.cat([a, low], 1))
        return resize(self.head(x), h, w)


ARCHITECTURES = {"unet": UNet, "unetpp": UNetPlusPlus, "linknet": LinkNet, "deeplabv3plus": DeepLabV3Plus}


# ---------------------------------------------------------------------------------------------------------------------
# Twin of MLNetMedSeg.Diffusion.Networks.DiffusionUNet (src/MLNetMedSeg/Diffusion/Networks/DiffusionUNet.cs): the ADM
# U-Net with scale-shift residual blocks, multi-head attention and nearest + conv up-sampling; same modules, same
# registration order and the same state-dict names, so the parameter counts (and weights) correspond one to one.

class DiffusionResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups, dropout):
        super().__init__()
        self.in_norm = nn.GroupNorm(groups, cin)
        self.in_conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.out_norm = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.in_conv(F.silu(self.in_norm(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, 1)
        h = self.out_norm(h) * (scale + 1) + shift
        h = self.out_conv(self.dropout(F.silu(h)))
        return (x if self.skip is None else self.skip(x)) + h


class DiffusionAttentionBlock(nn.Module):
    def __init__(self, channels, head_channels, groups):
        super().__init__()
        self.heads = channels // head_channels
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        n, c, h, w = x.shape
        d = c // self.heads
        q, k, v = self.qkv(self.norm(x)).chunk(3, 1)
        q, k, v = (t.reshape(n * self.heads, d, h * w) for t in (q, k, v))
        weight = torch.bmm(q.transpose(1, 2), k).mul(1.0 / d ** 0.5).softmax(-1)
        a = torch.bmm(v, weight.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.proj(a)


class DiffusionDownsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class DiffusionUpsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, size=(x.shape[2] * 2, x.shape[3] * 2), mode="nearest"))


class DiffusionUNetBlock(nn.Module):
    def __init__(self, res=None, attn=None, resample=None):
        super().__init__()
        if res is not None:
            self.res = res
        if attn is not None:
            self.attn = attn
        if resample is not None:
            setattr(self, "down" if isinstance(resample, DiffusionDownsample) else "up", resample)

    def forward(self, x, emb):
        if hasattr(self, "res"):
            x = self.res(x, emb)
        if hasattr(self, "attn"):
            x = self.attn(x)
        if hasattr(self, "down"):
            x = self.down(x)
        if hasattr(self, "up"):
            x = self.up(x)
        return x


class DiffusionUNet(nn.Module):
    """DiffusionUNetOptions' defaults: base 32, multipliers (1, 2, 2), one block per level, attention at 16 px of a
    64 px input, head width 32, 8 groups; the image diffusion stage uses 3 image channels in and out, 1 mask channel."""

    def __init__(self, cin=3, cout=3, cond=1, base=32, mults=(1, 2, 2), blocks=1, attn_res=(16,), head=32, groups=8,
                 dropout=0.0, image_size=64):
        super().__init__()
        emb = 4 * base
        levels = len(mults)
        has_attn = [(image_size >> l) in attn_res for l in range(levels)]
        self.time_embed = nn.Sequential(nn.Linear(base, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_conv = nn.Conv2d(cin + cond, base, 3, padding=1)
        skips, ch = [base], base
        self.down = nn.ModuleList()
        for l, m in enumerate(mults):
            width = base * m
            for _ in range(blocks):
                self.down.append(DiffusionUNetBlock(DiffusionResBlock(ch, width, emb, groups, dropout),
                                                    DiffusionAttentionBlock(width, head, groups) if has_attn[l] else None))
                ch = width
                skips.append(ch)
            if l != levels - 1:
                self.down.append(DiffusionUNetBlock(resample=DiffusionDownsample(ch)))
                skips.append(ch)
        self.middle = nn.Module()
        self.middle.res1 = DiffusionResBlock(ch, ch, emb, groups, dropout)
        self.middle.attn = DiffusionAttentionBlock(ch, head, groups)
        self.middle.res2 = DiffusionResBlock(ch, ch, emb, groups, dropout)
        self.up = nn.ModuleList()
        for l in reversed(range(levels)):
            width = base * mults[l]
            for i in range(blocks + 1):
                skip = skips.pop()
                self.up.append(DiffusionUNetBlock(
                    DiffusionResBlock(ch + skip, width, emb, groups, dropout),
                    DiffusionAttentionBlock(width, head, groups) if has_attn[l] else None,
                    DiffusionUpsample(width) if l > 0 and i == blocks else None))
                ch = width
        self.out_norm = nn.GroupNorm(groups, ch)
        self.out_conv = nn.Conv2d(ch, cout, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)
        half = base // 2
        self.register_buffer("freqs", torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / half)),
                             persistent=False)

    def forward(self, x, t, cond=None):
        args = t.float()[:, None] * self.freqs[None]
        emb = self.time_embed(torch.cat([args.cos(), args.sin()], 1).to(x.dtype))
        h = self.input_conv(x if cond is None else torch.cat([x, cond], 1))
        hs = [h]
        for b in self.down:
            h = b(h, emb)
            hs.append(h)
        h = self.middle.res2(self.middle.attn(self.middle.res1(h, emb)), emb)
        for b in self.up:
            h = b(torch.cat([h, hs.pop()], 1), emb)
        return self.out_conv(F.silu(self.out_norm(h)))


def create(name, cin=3, classes=1):
    return ARCHITECTURES[name](cin=cin, classes=classes)


def _main():
    for n in ARCHITECTURES:
        net = create(n)
        print(n, sum(p.numel() for p in net.parameters()), tuple(net(torch.rand(2, 3, 33, 47)).shape))


def deterministic_fill_(module):
    """Overwrites every floating state-dict entry j (state-dict order) with v[k] = 0.5 sin(0.731 k + 1.3 j) / sqrt(fan)
    (fan = product of the dims after the first; 1 for vectors); running_var gets 1 + 0.25 sin(...). The same function is
    in test/MLNetMedSeg.Tests/Segmentation/Networks/TwinEquivalenceTests.cs: with it both sides hold identical weights
    without a weights file, and their outputs can be compared."""
    with torch.no_grad():
        j = 0
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            k = torch.arange(t.numel(), dtype=torch.float64)
            s = torch.sin(0.731 * k + 1.3 * j)
            if name.endswith("running_var"):
                v = 1 + 0.25 * s
            else:
                fan = 1
                for d in t.shape[1:]:
                    fan *= d
                v = 0.5 * s / fan ** 0.5
            t.copy_(v.reshape(t.shape).to(t.dtype))
            j += 1


def twin_reference():
    """Prints the reference numbers of TwinEquivalenceTests (small widths, eval mode, 2x3x33x47 input, 2 classes)."""
    small = {
        "UNet": lambda: UNet(3, 2, (8, 16, 32, 64)),
        "UNetPlusPlus": lambda: UNetPlusPlus(3, 2, (8, 16, 32, 64)),
        "LinkNet": lambda: LinkNet(3, 2, (16, 16, 32, 64, 64), (1, 1, 1, 1), 16),
        "DeepLabV3Plus": lambda: DeepLabV3Plus(3, 2, (16, 16, 32, 64, 64), (1, 1, 1, 1), 16, 32, 16, (2, 4, 6), 0.0),
    }
    x = torch.sin(0.05 * torch.arange(2 * 3 * 33 * 47, dtype=torch.float64)).reshape(2, 3, 33, 47).float()
    for name, make in small.items():
        net = make()
        deterministic_fill_(net)
        net.eval()
        with torch.no_grad():
            y = net(x)
        print(f'["{name}"] = ({y.double().sum().item():.6f}, {y.double().abs().sum().item():.6f}, '
              f'{y[1, 0, 17, 23].item():.6f}, {y[0, 1, 32, 46].item():.6f}),')


if __name__ == "__main__":
    import sys as _sys
    if len(_sys.argv) > 1 and _sys.argv[1] == "--twin-reference":
        twin_reference()
    else:
        _main()
