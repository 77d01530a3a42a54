#!/usr/bin/env python3
"""Reference MS-SSIM values for test/MLNetMedSeg.Tests/Evaluation/MsSsimTests.cs.

An independent float64 re-implementation of pytorch_msssim.ms_ssim (Gaussian window 11, sigma 1.5, K = (0.01, 0.03),
weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333, "valid" separable filtering, avg-pool by 2 with odd sizes padded),
extended as MsSsim.cs documents for small images: M = the largest number of scales whose coarsest scale (sizes halved,
rounding up) still holds one window, first M weights renormalised; below one window, a smaller odd window with sigma
scaled by size/11 and single-scale SSIM. Run: /usr/bin/python3 build/tools/msssim_reference.py
"""
import math
import torch
import torch.nn.functional as F

W = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def window(size, sigma, c):
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g.view(1, 1, 1, size).repeat(c, 1, 1, 1)


def filt(x, w):
    c = x.shape[1]
    x = F.conv2d(x, w, groups=c)
    return F.conv2d(x, w.transpose(2, 3), groups=c)


def ssim(x, y, w, c1, c2):
    mu1, mu2 = filt(x, w), filt(y, w)
    s1 = filt(x * x, w) - mu1 ** 2
    s2 = filt(y * y, w) - mu2 ** 2
    s12 = filt(x * y, w) - mu1 * mu2
    cs = (2 * s12 + c2) / (s1 + s2 + c2)
    l = (2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1)
    return (l * cs).flatten(2).mean(-1), cs.flatten(2).mean(-1)


def scales_for(h, w, win=11):
    side = min(h, w)
    if side < win:
        s = side if side % 2 == 1 else side - 1
        return 1, s, 1.5 * s / win
    m = 1
    while m < 5:
        h, w = (h + 1) // 2, (w + 1) // 2
        if min(h, w) < win:
            break
        m += 1
    return m, win, 1.5


def ms_ssim(x, y):
    m, win, sigma = scales_for(x.shape[2], x.shape[3])
    weights = torch.tensor(W[:m], dtype=torch.float64)
    weights = weights / weights.sum()
    w = window(win, sigma, x.shape[1])
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for j in range(m):
        s, cs = ssim(x, y, w, c1, c2)
        vals.append(torch.relu(cs) if j < m - 1 else torch.relu(s))
        if j < m - 1:
            pad = [x.shape[2] % 2, x.shape[3] % 2]
            x = F.avg_pool2d(x, 2, padding=pad)
            y = F.avg_pool2d(y, 2, padding=pad)
    v = torch.stack(vals, 0) ** weights.view(-1, 1, 1)
    return v.prod(0).mean(1)


def pattern(n, c, h, w, shift):
    """The deterministic test images of MsSsimTests.Pattern."""
    i = torch.arange(h, dtype=torch.float64).view(1, 1, h, 1)
    j = torch.arange(w, dtype=torch.float64).view(1, 1, 1, w)
    k = torch.arange(c, dtype=torch.float64).view(1, c, 1, 1)
    b = torch.arange(n, dtype=torch.float64).view(n, 1, 1, 1)
    v = 0.5 + 0.3 * torch.sin(0.21 * i + 0.13 * j + k + 0.7 * b + shift) + 0.15 * torch.cos(0.05 * i * j / (1 + shift) + b)
    return v.clamp(0, 1)


if __name__ == "__main__":
    for (n, c, h, w) in [(2, 1, 64, 64), (1, 3, 200, 180), (2, 1, 8, 8), (1, 1, 161, 170), (1, 1, 37, 41)]:
        x, y = pattern(n, c, h, w, 0.0), pattern(n, c, h, w, 0.4)
        print((n, c, h, w), scales_for(h, w), [f"{v:.10f}" for v in ms_ssim(x, y).tolist()])
