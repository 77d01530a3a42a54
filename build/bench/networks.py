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


# ---------------------------------------------------------------------------------------------------------------------
# Twins of cDAL's networks (paper 003; src/MLNetMedSeg/Segmentation/Cdal): CdalGeneratorNetwork,
# CdalDiscriminatorNetwork and their blocks in CdalLayers.cs, read layer by layer: the same modules, widths, kernel
# sizes, biases, group counts, epsilons, zero-initialised convs, registration order and state-dict names, and the same
# forward. The constructors take CdalOptions' knobs (snake_case); their defaults are CdalOptions' (the paper's CXR
# network), cdal_cpu_sized() is CdalTrainerOptions.CpuSizedModel() (what the CLI and the simple catalog overload train).

def cdal_groups(channels):
    """CdalLayers.Groups: min(C/4, 32) lowered to the largest divisor of C (at least 1)."""
    g = max(1, min(channels // 4, 32))
    while g > 1:
        if channels % g == 0:
            return g
        g -= 1
    return 1


def cdal_sinusoidal(t, dim):
    """CdalLayers.SinusoidalEmbedding: f_k = exp(-k ln 10000 / (half - 1)), [sin(t f), cos(t f)], zero-padded if odd."""
    half = dim // 2
    step = math.log(10000.0) / (half - 1) if half > 1 else 0.0
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -step)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], 1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def cdal_cpu_sized(image_size=64):
    """CdalTrainerOptions.CpuSizedModel() at image_size (the other settings: CdalOptions' defaults)."""
    return dict(base=32, mults=(1, 2, 2, 2), attn_res=(8,), cond_blocks=2, zemb=128, mapping_layers=2, ngf=32,
                d_temb=128, image_size=image_size)


class CdalAdaptiveGroupNorm(nn.Module):
    """AdaptiveGroupNorm: GN (no affine, eps 1e-6), then gamma(z) GN(x) + beta(z), [gamma, beta] = Linear(z_emb);
    gamma's bias starts at 1, beta's at 0."""

    def __init__(self, channels, style_dim):
        super().__init__()
        self.norm = nn.GroupNorm(cdal_groups(channels), channels, eps=1e-6, affine=False)
        self.style = nn.Linear(style_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels].fill_(1)
            self.style.bias[channels:].fill_(0)

    def forward(self, x, style):
        g, b = self.style(style)[:, :, None, None].chunk(2, 1)
        return g * self.norm(x) + b


class CdalResBlock(nn.Module):
    """CdalResBlock: BigGAN-style block with AdaGN; resample -1 = average-pool /2, +1 = nearest x2 (of h and x)."""

    def __init__(self, cin, cout, temb, zemb, dropout, resample=0):
        super().__init__()
        self.resample = (resample > 0) - (resample < 0)
        self.norm0 = CdalAdaptiveGroupNorm(cin, zemb)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm1 = CdalAdaptiveGroupNorm(cout, zemb)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv1.weight)
        nn.init.zeros_(self.conv1.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout or self.resample != 0 else None

    def _resample(self, t):
        if self.resample < 0:
            return F.avg_pool2d(t, 2)
        return F.interpolate(t, size=(t.shape[2] * 2, t.shape[3] * 2), mode="nearest")

    def forward(self, x, temb, zemb):
        h = F.silu(self.norm0(x, zemb))
        if self.resample != 0:
            h, x = self._resample(h), self._resample(x)
        h = self.conv0(h)
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.norm1(h, zemb))))
        s = x if self.skip is None else self.skip(x)
        return (s + h) * (1 / math.sqrt(2))


class CdalEncoderBlock(nn.Module):
    """CdalEncoderBlock: x + conv3_zero(Dropout(SiLU(GN(conv3(SiLU(GN(x))))))) (GN eps 1e-5, affine)."""

    def __init__(self, channels, dropout):
        super().__init__()
        self.norm0 = nn.GroupNorm(cdal_groups(channels), channels)
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(cdal_groups(channels), channels)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv1.weight)
        nn.init.zeros_(self.conv1.bias)

    def forward(self, x):
        h = self.conv0(F.silu(self.norm0(x)))
        return x + self.conv1(self.dropout(F.silu(self.norm1(h))))


class CdalUNetBlock(nn.Module):
    """CdalUNetBlock: res, optional attn, optional second residual block (named resample, or res2 in the middle)."""

    def __init__(self, res, attn=None, after=None, after_name="resample"):
        super().__init__()
        self.res = res
        if attn is not None:
            self.attn = attn
        self.after_name = after_name if after is not None else None
        if after is not None:
            setattr(self, after_name, after)

    def forward(self, x, temb, zemb):
        h = self.res(x, temb, zemb)
        if hasattr(self, "attn"):
            h = self.attn(h)
        if self.after_name is not None:
            h = getattr(self, self.after_name)(h, temb, zemb)
        return h


def _cdal_attention(channels):
    # CdalGeneratorNetwork.Attention: one head over all channels, CdalLayers.Groups groups (GN eps 1e-5)
    return DiffusionAttentionBlock(channels, channels, cdal_groups(channels))


class CdalGenerator(nn.Module):
    """CdalGeneratorNetwork: x0-hat = tanh(U-Net(x_t | t, z, image)); image encoder added to the first feature map,
    time MLP in every residual block, latent mapping network into every AdaGN."""

    def __init__(self, label_channels=1, image_channels=3, base=32, mults=(1, 1, 2, 2, 4, 4), blocks=1, attn_res=(16,),
                 cond_blocks=6, latent_dim=100, zemb=256, mapping_layers=3, dropout=0.0, image_size=256, **_):
        super().__init__()
        nf, temb = base, 4 * base
        self.base = base
        self.time_embed = nn.Sequential(nn.Linear(nf, temb), nn.SiLU(), nn.Linear(temb, temb))
        mapping = [nn.Linear(latent_dim, zemb), nn.SiLU()]
        for _ in range(mapping_layers):
            mapping += [nn.Linear(zemb, zemb), nn.SiLU()]
        self.z_map = nn.Sequential(*mapping)
        self.cond_in = nn.Conv2d(image_channels, nf, 3, padding=1)
        self.cond_blocks = nn.ModuleList([CdalEncoderBlock(nf, dropout) for _ in range(cond_blocks)])
        self.input_conv = nn.Conv2d(label_channels, nf, 3, padding=1)
        skips, ch, levels = [nf], nf, len(mults)
        self.down = nn.ModuleList()
        for level in range(levels):
            width = nf * mults[level]
            attn = (image_size >> level) in attn_res
            for _ in range(blocks):
                self.down.append(CdalUNetBlock(CdalResBlock(ch, width, temb, zemb, dropout),
                                               _cdal_attention(width) if attn else None))
                ch = width
                skips.append(ch)
            if level != levels - 1:
                self.down.append(CdalUNetBlock(CdalResBlock(ch, ch, temb, zemb, dropout, resample=-1)))
                skips.append(ch)
        self.middle = CdalUNetBlock(CdalResBlock(ch, ch, temb, zemb, dropout), _cdal_attention(ch),
                                    CdalResBlock(ch, ch, temb, zemb, dropout), after_name="res2")
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            width = nf * mults[level]
            attn = (image_size >> level) in attn_res
            for i in range(blocks + 1):
                skip = skips.pop()
                last = i == blocks
                self.up.append(CdalUNetBlock(
                    CdalResBlock(ch + skip, width, temb, zemb, dropout),
                    _cdal_attention(width) if last and attn else None,
                    CdalResBlock(width, width, temb, zemb, dropout, resample=+1) if last and level > 0 else None))
                ch = width
        self.out_norm = nn.GroupNorm(cdal_groups(ch), ch, eps=1e-6)
        self.out_conv = nn.Conv2d(ch, label_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, xt, t, z, image):
        zn = z / (z.square().mean(1, keepdim=True) + 1e-8).sqrt()  # pixel norm
        zemb = self.z_map(zn)
        temb = self.time_embed(cdal_sinusoidal(t, self.base))
        c = self.cond_in(image)
        for b in self.cond_blocks:
            c = b(c)
        h = self.input_conv(xt) + c
        hs = [h]
        for b in self.down:
            h = b(h, temb, zemb)
            hs.append(h)
        h = self.middle(h, temb, zemb)
        for b in self.up:
            h = b(torch.cat([h, hs.pop()], 1), temb, zemb)
        return self.out_conv(F.silu(self.out_norm(h))).tanh()


class CdalDownBlock(nn.Module):
    """CdalDownBlock: h = LReLU(conv1(LReLU(x)) + Linear(t_emb)); avg-pool h and x; (skip_nobias(x) + conv2(h)) / sqrt 2."""

    def __init__(self, cin, cout, temb, down):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x, temb):
        h = self.conv1(F.leaky_relu(x, 0.2))
        h = F.leaky_relu(h + self.temb(temb)[:, :, None, None], 0.2)
        if self.down:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        return (self.skip(x) + self.conv2(h)) * (1 / math.sqrt(2))


def cdal_discriminator_levels(image_size):
    """CdalOptions.DiscriminatorLevels: halvings of the side while it stays even and the half is >= 4."""
    levels, s = 0, image_size
    while s % 2 == 0 and s // 2 >= 4:
        s //= 2
        levels += 1
    return levels


class CdalDiscriminator(nn.Module):
    """CdalDiscriminatorNetwork: D(x_{t-1}, x_t, t) -> [N] logits; attention_map = channel mean of the level-k
    features (k: ImageSize / 2^k = attention_scale), bilinear to H x W, without gradients."""

    def __init__(self, label_channels=1, ngf=64, d_temb=256, image_size=256, attention_scale=16, **_):
        super().__init__()
        e = d_temb
        self.e = e
        self.t_embed = nn.Sequential(nn.Linear(e, e), nn.LeakyReLU(0.2), nn.Linear(e, e))
        ch = 2 * ngf
        self.start_conv = nn.Conv2d(2 * label_channels, ch, 1)
        self.blocks = nn.ModuleList()
        levels = cdal_discriminator_levels(image_size)
        for k in range(1, levels + 1):
            width = min((2 * ngf) << k, 8 * ngf)
            self.blocks.append(CdalDownBlock(ch, width, e, down=True))
            ch = width
        self.final_conv = nn.Conv2d(ch + 1, ch, 3, padding=1)
        self.end_linear = nn.Linear(ch, 1)
        sides = [image_size >> k for k in range(levels + 1)]
        if attention_scale not in sides:
            raise ValueError(f"attention_scale {attention_scale} is not one of {sides}")
        self.attention_level = sides.index(attention_scale)

    def features(self, x_prev, xt, t, up_to):
        temb = F.leaky_relu(self.t_embed(cdal_sinusoidal(t, self.e)), 0.2)
        feats = [self.start_conv(torch.cat([x_prev, xt], 1))]
        for k in range(up_to):
            feats.append(self.blocks[k](feats[-1], temb))
        return feats

    def forward(self, x_prev, xt, t):
        h = self.features(x_prev, xt, t, len(self.blocks))[-1]
        n, c, hh, ww = h.shape
        group = max(g for g in range(1, min(n, 4) + 1) if n % g == 0)  # minibatch standard deviation
        sd = h.view(group, -1, 1, c, hh, ww)
        sd = (sd.var(0, unbiased=False) + 1e-8).sqrt()
        sd = sd.mean([2, 3, 4], keepdim=True).squeeze(2)
        sd = sd.repeat(group, 1, hh, ww)
        h = F.leaky_relu(self.final_conv(torch.cat([h, sd], 1)), 0.2)
        return self.end_linear(h.view(n, c, -1).sum(2)).view(n)

    def attention_map(self, x_prev, xt, t):
        with torch.no_grad():
            a = self.features(x_prev, xt, t, self.attention_level)[self.attention_level].mean(1, keepdim=True)
            if a.shape[2:] != x_prev.shape[2:]:
                a = F.interpolate(a, size=tuple(x_prev.shape[2:]), mode="bilinear", align_corners=False)
        return a


class CdalSchedule:
    """CdalSchedule: Algorithm 1's closed-form beta_t (t = 1..T), alpha-bar; q(x_t | x_0), q(x_t | x_{t-1}), real
    pairs and the posterior q(x_{t-1} | x_t, x0-hat); coefficients in float64, gathered per sample as float32."""

    def __init__(self, timesteps=2, beta_min=0.1, beta_max=20.0):
        T = timesteps
        self.T = T
        betas, ab = [0.0], [1.0]
        for t in range(1, T + 1):
            b = 1 - math.exp(-beta_min / T - 0.5 * (beta_max - beta_min) * (2.0 * t - 1) / (T * T))
            betas.append(b)
            ab.append(ab[-1] * (1 - b))
        self.betas, self.ab = betas, ab

        def table(f, lo):
            return torch.tensor([f(i) if i >= lo else 0.0 for i in range(T + 1)], dtype=torch.float32)

        self.sqrt_ab = table(lambda i: math.sqrt(ab[i]), 0)
        self.sqrt_1m_ab = table(lambda i: math.sqrt(1 - ab[i]), 0)
        self.sqrt_a = table(lambda i: math.sqrt(1 - betas[i]), 1)
        self.sqrt_b = table(lambda i: math.sqrt(betas[i]), 1)
        self.c0 = table(lambda i: betas[i] * math.sqrt(ab[i - 1]) / (1 - ab[i]), 1)
        self.ct = table(lambda i: (1 - ab[i - 1]) * math.sqrt(1 - betas[i]) / (1 - ab[i]), 1)
        self.var = table(lambda i: betas[i] * (1 - ab[i - 1]) / (1 - ab[i]), 1)

    @staticmethod
    def _at(tab, t):
        return tab.index_select(0, t).view(-1, 1, 1, 1)

    def sample_q(self, x0, t, noise):
        return self._at(self.sqrt_ab, t) * x0 + self._at(self.sqrt_1m_ab, t) * noise

    def sample_step(self, x_prev, t, noise):
        return self._at(self.sqrt_a, t) * x_prev + self._at(self.sqrt_b, t) * noise

    def sample_pair(self, x0, t, gen):
        e1 = torch.randn(x0.shape, generator=gen)
        e2 = torch.randn(x0.shape, generator=gen)
        prev = self.sample_q(x0, t - 1, e1)
        return prev, self.sample_step(prev, t, e2)

    def sample_posterior(self, x0, xt, t, noise):
        mean = self._at(self.c0, t) * x0 + self._at(self.ct, t) * xt
        return mean + self._at(self.var, t).sqrt() * noise


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


def cdal_twin_reference():
    """Prints the reference numbers of CdalNetworkTests.NetworksMatchTheirPyTorchTwins (tiny cDAL networks filled by
    deterministic_fill_, eval mode; the discriminator's logits on inputs x 100)."""
    o = dict(label_channels=1, image_channels=3, base=8, mults=(1, 2), blocks=1, attn_res=(8,), cond_blocks=1,
             latent_dim=4, zemb=8, mapping_layers=1, ngf=4, d_temb=8, image_size=16, attention_scale=8)
    g, d = CdalGenerator(**o), CdalDiscriminator(**o)
    for m in (g, d):
        deterministic_fill_(m)
        m.eval()

    def seq(shape, f):
        return f(torch.arange(math.prod(shape), dtype=torch.float64)).reshape(shape).float()

    xt = seq((2, 1, 16, 16), lambda k: torch.sin(0.05 * k))
    image = seq((2, 3, 16, 16), lambda k: torch.cos(0.07 * k))
    z = seq((2, 4), lambda k: torch.sin(0.3 * k + 0.1))
    x_prev = seq((2, 1, 16, 16), lambda k: torch.cos(0.11 * k))
    t = torch.tensor([1, 2])
    with torch.no_grad():
        y = g(xt, t, z, image).double()
        logits = d(x_prev * 100, xt * 100, t).double()
        a = d.attention_map(x_prev, xt, t).double()
    print(f"params {sum(p.numel() for p in g.parameters())} {sum(p.numel() for p in d.parameters())} "
          f"state-dict entries {len(g.state_dict())} {len(d.state_dict())}")
    print(f"generator sum {y.sum().item():.6f} |sum| {y.abs().sum().item():.6f} y[1,0,9,5] {y[1, 0, 9, 5].item():.6f} "
          f"y[0,0,15,0] {y[0, 0, 15, 0].item():.6f}")
    print(f"discriminator logits (inputs x 100) {logits[0].item():.7f} {logits[1].item():.7f}")
    print(f"attention map sum {a.sum().item():.6f} a[1,0,3,12] {a[1, 0, 3, 12].item():.6f}")


if __name__ == "__main__":
    import sys as _sys
    if len(_sys.argv) > 1 and _sys.argv[1] == "--twin-reference":
        twin_reference()
    elif len(_sys.argv) > 1 and _sys.argv[1] == "--cdal-twin-reference":
        cdal_twin_reference()
    else:
        _main()
