#!/usr/bin/python3
"""PyTorch side of build/bench.sh: the same cases as test/MLNetMedSeg.Bench, on the same libtorch.

Prints one line per case: "<case> <median_ms> [key=value ...]" with the keys of test/MLNetMedSeg.Bench/Program.cs:
params= (training-step, diffusion and cDAL cases; diffpgd_batch "<segmenter>+<diffusion>", cdal_train_step
"<generator>+<discriminator>"), calls= (diffpgd_batch:
"<diffusion forwards>+<segmenter forwards>"), gflops= (sgemm cases), us_per_op= (tiny_ops), min_ms= (the fastest run), cpu_ms= (the median CPU time
of a run).
Training-step cases: unet_train_step and seg_step_<arch>, each optionally followed by _bf16 (torch.autocast('cpu',
dtype=torch.bfloat16) around the forward, fp32 parameters, loss in fp32) and/or _channels_last (network and input
.to(memory_format=torch.channels_last)), e.g. unet_train_step_bf16_channels_last.
Run with Debian's /usr/bin/python3 + python3-torch.
"""
import argparse
import math
import statistics
import time

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import networks  # noqa: E402  (PyTorch twins of MLNetMedSeg.Segmentation.Networks)

SEG_CASES = {"seg_step_unet": "unet", "seg_step_unetpp": "unetpp", "seg_step_linknet": "linknet",
             "seg_step_deeplabv3plus": "deeplabv3plus"}


def block(i, o):
    return nn.Sequential(
        nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
        nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Encoder widths 32/64/128/256/512, four 2x down-samplings, 2x2 transposed-conv up, 1x1 head (7.76 M params)."""

    def __init__(self, cin=3, widths=(32, 64, 128, 256, 512)):
        super().__init__()
        self.down = nn.ModuleList([block(cin, widths[0])] + [block(widths[i], widths[i + 1]) for i in range(4)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(4))])
        self.dec = nn.ModuleList([block(2 * widths[i], widths[i]) for i in reversed(range(4))])
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x):
        skips = []
        for k, b in enumerate(self.down):
            x = b(x)
            if k < 4:
                skips.append(x)
                x = torch.max_pool2d(x, 2)
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], 1))
        return self.head(x)


def soft_dice_loss(logits, target, eps=1.0):
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


DEVICE = torch.device("cpu")  # --device: cuda runs the U-Net, seg_step_* and tiny_ops cases on the GPU


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


STATS = {}  # min_ms= (the fastest timed run) and cpu_ms= (median CPU time of a run) of the last median_ms


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    sync()
    times, cpu = [], []
    for _ in range(iters):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        sync()  # GPU work is asynchronous: a step ends when the device is done
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    STATS["min_ms"] = f"{min(times):.3f}"
    STATS["cpu_ms"] = f"{statistics.median(cpu):.3f}"
    return statistics.median(times)


def parse_train_case(name):
    """(network, bf16, channels_last) of a training-step case name, or None."""
    bf16 = cl = False
    while True:
        if name.endswith("_bf16"):
            bf16, name = True, name[:-len("_bf16")]
        elif name.endswith("_channels_last"):
            cl, name = True, name[:-len("_channels_last")]
        else:
            break
    if name == "unet_train_step" or name in SEG_CASES:
        return name, bf16, cl
    return None


def train_step_case(network, bf16, channels_last, warmup, iters, size, batch):
    """One training step (forward, soft-Dice loss, backward, Adam step); returns (ms, params)."""
    torch.manual_seed(0)
    net = (UNet() if network == "unet_train_step" else networks.create(SEG_CASES[network])).to(DEVICE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size, size).to(DEVICE)
    y = (torch.rand(batch, 1, size, size) > 0.5).float().to(DEVICE)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        if bf16:
            with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
                out = net(x)
            loss = soft_dice_loss(out.float(), y)
        else:
            loss = soft_dice_loss(net(x), y)
        loss.backward()
        opt.step()

    return median_ms(step, warmup, iters), sum(p.numel() for p in net.parameters())


def gemm_case(dtype, warmup, iters, n):
    """An n x n x n matrix product: the machine's attainable GEMM rate."""
    a = torch.randn(n, n).to(dtype=dtype, device=DEVICE)
    b = torch.randn(n, n).to(dtype=dtype, device=DEVICE)
    return median_ms(lambda: a.mm(b), warmup, iters)


def linear_alphas_cumprod(steps=1000):
    """NoiseSchedule.Create(Linear, 1000): beta from 1e-4 to 0.02 (float64), alpha-bar = cumprod(1 - beta)."""
    betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def default_diffusion_net():
    """ImageDiffusionOptions' default network: networks.DiffusionUNet defaults (3 + 1 mask channels in, 3 out, 64 px)."""
    torch.manual_seed(0)
    return networks.DiffusionUNet()


def diffusion_train_step_case(warmup, iters, size, batch):
    """One step of GaussianDiffusion.TrainingLoss (Eq. 8) + backward + Adam, as guided-diffusion's training_losses."""
    net = default_diffusion_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    ab = linear_alphas_cumprod()
    sqrt_ab, sqrt_1m_ab = ab.sqrt(), (1 - ab).sqrt()
    x0 = torch.rand(batch, 3, size, size) * 2 - 1
    cond = (torch.rand(batch, 1, size, size) > 0.5).float() * 2 - 1

    def step():
        opt.zero_grad(set_to_none=True)
        t = torch.randint(0, 1000, (batch,))
        noise = torch.randn_like(x0)
        xt = sqrt_ab.float()[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_ab.float()[t].view(-1, 1, 1, 1) * noise
        loss = F.mse_loss(net(xt, t, cond), noise)
        loss.backward()
        opt.step()

    return median_ms(step, warmup, iters), sum(p.numel() for p in net.parameters())


def trained_like_(net):
    """DiffusionCases.TrainedLike: the zero-initialised output convs drawn N(0, 0.02) (so eps-hat is not all zeros)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("out_conv.weight") or name.endswith("proj.weight"):
                p.normal_(0, 0.02)


def respaced_50():
    """NoiseSchedule.Respace(50) of the linear T = 1000 schedule: kept steps round(i * 999 / 49) and their alpha-bars."""
    ab = linear_alphas_cumprod()
    keep = [int(torch.tensor(i * 999 / 49, dtype=torch.float64).add(0.5).floor().item()) for i in range(50)]
    return keep, [ab[k].item() for k in keep]


def ddim50_sample_case(warmup, iters, size, batch):
    """GaussianDiffusion.Sample with DDIM, 50 respaced steps, eta 0 (guided-diffusion's ddim_sample_loop)."""
    net = default_diffusion_net()
    trained_like_(net)
    net.eval()
    keep, ab_s = respaced_50()
    cond = (torch.rand(batch, 1, size, size) > 0.5).float() * 2 - 1

    def sample():
        with torch.no_grad():
            x = torch.randn(batch, 3, size, size)
            for i in reversed(range(50)):
                a, a_prev = ab_s[i], (ab_s[i - 1] if i > 0 else 1.0)
                eps = net(x, torch.full((batch,), keep[i], dtype=torch.long), cond)
                x0 = ((x - eps * (1 - a) ** 0.5) * (1 / a ** 0.5)).clamp(-1, 1)
                eps = (x - x0 * a ** 0.5) * (1 / (1 - a) ** 0.5)
                x = x0 * a_prev ** 0.5 + eps * (1 - a_prev) ** 0.5
        return x

    return median_ms(sample, warmup, iters), sum(p.numel() for p in net.parameters())


def diffpgd_batch_case(warmup, iters, size, batch):
    """One DASP attack of a batch (AdversarialAttack.Run with AdversarialAttackOptions.Dasp() pinned to
    Gradient = Detached and SdEditDepth = 2, as AttackCases.cs sets them), written plainly:
    W = exp(-z^2 / 8) on the clean logits (no grad); K = 10 steps of the detached Diff-PGD form: x_d = SDEdit(x_adv)
    without grad, loss = sum over images of mean over pixels of y * W * BCE(sigmoid(seg(x_d)), y) (Eq. 10), g = d loss /
    d x_d, x_adv = clip(x_adv + sign(g) / 255, 0, 1); result SDEdit(x_adv) clamped to [0, 1]. SDEdit as
    ImageDiffusionTransformer.SdEdit + GaussianDiffusion.SdEdit: condition 2y - 1, x to [-1, 1], noised to respaced step
    depth - 1 = 2 (one randn of the batch from the attack's SDEdit generator), 3 DDIM (eta 0) steps i = 2, 1, 0 with one
    network forward each (guidance 0), back to [0, 1] clamped. Returns (ms, "seg+diffusion" params, calls per attack)."""
    torch.manual_seed(0)
    seg = networks.create("unet")
    net = default_diffusion_net()
    trained_like_(net)
    seg.eval()
    net.eval()
    keep, ab_s = respaced_50()
    depth, steps, gamma, variance = 3, 10, 1.0 / 255, 4.0
    x = torch.rand(batch, 3, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    calls = {"diffusion": 0, "seg": 0}

    def logits(t):
        calls["seg"] += 1
        return seg(t)

    def sdedit(images, masks, gen):
        with torch.no_grad():
            cond = masks * 2.0 - 1.0
            xm = images * 2.0 - 1.0
            a = ab_s[depth - 1]
            cur = xm * a ** 0.5 + torch.randn(xm.shape, generator=gen) * (1 - a) ** 0.5
            for i in reversed(range(depth)):
                a, a_prev = ab_s[i], (ab_s[i - 1] if i > 0 else 1.0)
                calls["diffusion"] += 1
                eps = net(cur, torch.full((cur.shape[0],), keep[i], dtype=torch.long), cond)
                x0 = ((cur - eps * (1 - a) ** 0.5) * (1 / a ** 0.5)).clamp(-1, 1)
                eps = (cur - x0 * a ** 0.5) * (1 / (1 - a) ** 0.5)
                cur = x0 * a_prev ** 0.5 + eps * max(1 - a_prev, 0) ** 0.5
            return ((cur + 1.0) * 0.5).clamp(0.0, 1.0)

    seen = []

    def attack():
        calls["diffusion"] = calls["seg"] = 0
        with torch.no_grad():
            w = logits(x).square().div(-2.0 * variance).exp()
        gen = torch.Generator().manual_seed(0)
        adv = x.clone()
        for _ in range(steps):
            xd = sdedit(adv, y, gen).detach().requires_grad_()
            per_pixel = F.binary_cross_entropy_with_logits(logits(xd), y, reduction="none") * w * y
            loss = per_pixel.mean((1, 2, 3)).sum()
            g, = torch.autograd.grad(loss, [xd])
            adv = (adv + g.sign() * gamma).clamp(0, 1)
        out = sdedit(adv, y, gen).clamp(0, 1)
        seen.append(f"{calls['diffusion']}+{calls['seg']}")
        return out

    ms = median_ms(attack, warmup, iters)
    if len(set(seen)) != 1:
        raise RuntimeError(f"network calls changed between runs: {seen}")
    params = f"{sum(p.numel() for p in seg.parameters())}+{sum(p.numel() for p in net.parameters())}"
    return ms, params, seen[0]


CDAL_T = 2  # the paper's T for CXR (the cases' CdalOptions.Timesteps)


def cdal_networks(size, need_discriminator=True):
    """CdalCases.Options: CdalTrainerOptions.CpuSizedModel() at size px, T = 2 (networks.cdal_cpu_sized)."""
    torch.manual_seed(0)
    o = networks.cdal_cpu_sized(size)
    g = networks.CdalGenerator(**o)
    d = networks.CdalDiscriminator(**o) if need_discriminator else None
    return g, d


def cdal_batch(size, batch):
    images = torch.rand(batch, 3, size, size)
    masks = (torch.rand(batch, 1, size, size) > 0.5).float()
    return images, masks


def cdal_train_step_case(warmup, iters, size, batch):
    """CdalTrainingStep.Step, written plainly (Algorithm 1 as the library implements it): labels 2m - 1, condition
    2I - 1; D step: t ~ U{1..T}, real pair x_{t-1} ~ q(x_{t-1} | x0), x_t ~ q(x_t | x_{t-1}); softplus(-D(real)) + R1
    (gamma = 1, every step: d sum D / d x_{t-1} with create_graph, gamma/2 E||grad||^2); z ~ N(0, I); x0-hat =
    G(x_t, t, z, I) without grad; x-hat_{t-1} from the posterior; softplus(D(fake)); Adam (lr 1e-5, betas 0.5, 0.9).
    G step with D's parameters frozen: fresh t and real pair; A_D (D's level features at 16 px, channel mean, bilinear,
    no grad); x_t^att ~ q(x_t | x0 * A_D); z; MSE(x0, G(x_t^att, t, z, I)); Adam (lr 2e-4). Every draw from one
    generator in the library's order; both losses read back (.item(), the library's finiteness checks).
    Returns (ms, "<generator>+<discriminator>" params)."""
    g_net, d_net = cdal_networks(size)
    sched = networks.CdalSchedule(CDAL_T)
    opt_g = torch.optim.Adam(g_net.parameters(), lr=2e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d_net.parameters(), lr=1e-5, betas=(0.5, 0.9))
    gen = torch.Generator().manual_seed(0)
    images, masks = cdal_batch(size, batch)
    latent = 100

    def step():
        x0 = masks * 2 - 1
        cond = images * 2 - 1
        n = x0.shape[0]
        g_net.train()
        d_net.train()
        # discriminator step, generator frozen
        t = torch.randint(1, CDAL_T + 1, (n,), generator=gen)
        x_prev, xt = sched.sample_pair(x0, t, gen)
        x_prev = x_prev.detach().requires_grad_(True)
        d_real = d_net(x_prev, xt, t)
        loss_real = F.softplus(-d_real).mean()
        grad, = torch.autograd.grad(d_real.sum(), [x_prev], create_graph=True)
        penalty = grad.reshape(n, -1).square().sum(1).mean() * 0.5
        z = torch.randn(n, latent, generator=gen)
        with torch.no_grad():
            x0_pred = g_net(xt, t, z, cond)
            x_fake = sched.sample_posterior(x0_pred, xt, t, torch.randn(xt.shape, generator=gen))
        loss_fake = F.softplus(d_net(x_fake, xt, t)).mean()
        loss_d = loss_real + loss_fake + penalty
        if not math.isfinite(loss_d.item()):
            raise RuntimeError("discriminator loss diverged")
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator step, discriminator frozen
        for p in d_net.parameters():
            p.requires_grad_(False)
        try:
            t2 = torch.randint(1, CDAL_T + 1, (n,), generator=gen)
            x_prev2, xt2 = sched.sample_pair(x0, t2, gen)
            x0_att = x0 * d_net.attention_map(x_prev2, xt2, t2)
            xt_in = sched.sample_q(x0_att, t2, torch.randn(x0.shape, generator=gen))
            z2 = torch.randn(n, latent, generator=gen)
            mse = (x0 - g_net(xt_in, t2, z2, cond)).square().mean()
            if not math.isfinite(mse.item()):
                raise RuntimeError("generator loss diverged")
            opt_g.zero_grad(set_to_none=True)
            mse.backward()
            opt_g.step()
        finally:
            for p in d_net.parameters():
                p.requires_grad_(True)

    params = f"{sum(p.numel() for p in g_net.parameters())}+{sum(p.numel() for p in d_net.parameters())}"
    return median_ms(step, warmup, iters), params


def cdal_image_seed(seed, index):
    """CdalSampler.ImageSeed: SplitMix64 of (seed, index)."""
    m = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + index + 0x632BE59BD9B4E019) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def cdal_predict5_case(warmup, iters, size, batch, samples=5):
    """CdalSampler.PredictProbability + ToMask (Algorithm 2): one generator per image (seeded as ImageSeed(0, i)); x_T
    ~ N(0, I) per image and sample; for t = 2, 1: z ~ N(0, I), x0-hat = G(x_t, t, z, 2I - 1) on the batch x 5 (eval, no
    grad), x_{t-1} from the posterior (at t = 1: x0-hat); probability = mean over the 5 samples of clamp((x + 1)/2, 0,
    1); mask = p >= 0.5. The generator's zero-initialised convs drawn N(0, 0.02) first, as CdalCases.Predict5.
    Returns (ms, generator params)."""
    g_net, _ = cdal_networks(size, need_discriminator=False)
    with torch.no_grad():
        for name, p in g_net.named_parameters():
            if name.endswith("out_conv.weight") or name.endswith("proj.weight") or name.endswith("conv1.weight"):
                p.normal_(0, 0.02)
    g_net.eval()
    sched = networks.CdalSchedule(CDAL_T)
    images, _ = cdal_batch(size, batch)
    latent, k = 100, samples

    def predict():
        n, _, h, w = images.shape
        gens = [torch.Generator().manual_seed(cdal_image_seed(0, i)) for i in range(n)]
        with torch.no_grad():
            cond = (images * 2 - 1).repeat_interleave(k, 0)
            x = torch.cat([torch.randn(k, 1, h, w, generator=g) for g in gens])
            for t in range(CDAL_T, 0, -1):
                ts = torch.full((n * k,), t, dtype=torch.long)
                z = torch.cat([torch.randn(k, latent, generator=g) for g in gens])
                x0 = g_net(x, ts, z, cond)
                if t == 1:
                    x = x0
                    break
                x = sched.sample_posterior(x0, x, ts, torch.cat([torch.randn(k, 1, h, w, generator=g) for g in gens]))
            prob = ((x + 1) * 0.5).clamp(0, 1).reshape(n, k, 1, h, w).mean(1)
            return prob.ge(0.5).float()

    return median_ms(predict, warmup, iters), sum(p.numel() for p in g_net.parameters())


DIFFUSION_CASES = {"diffusion_train_step": diffusion_train_step_case, "ddim50_sample": ddim50_sample_case,
                   "cdal_train_step": cdal_train_step_case, "cdal_predict5": cdal_predict5_case}


def tiny_ops_case(warmup, iters, n_ops):
    a = torch.rand(16).to(DEVICE)
    b = torch.rand(16).to(DEVICE)
    c = torch.rand(16).to(DEVICE)

    def loop():
        for _ in range(n_ops // 2):
            y = a * b + c  # two elementwise ops per iteration
        return y

    return median_ms(loop, warmup, iters)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", help="unet_train_step[_bf16][_channels_last], seg_step_<arch>[_bf16][_channels_last], "
                    "tiny_ops, sgemm, sgemm_bf16, diffusion_train_step, ddim50_sample, diffpgd_batch, cdal_train_step, "
                    "cdal_predict5")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--size", type=int, default=None,
                    help="128 px (segmentation cases), 64 px (diffusion and cDAL cases), 2048 (sgemm cases)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the training-step, sgemm and tiny_ops cases)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    global DEVICE
    DEVICE = torch.device(a.device)
    if DEVICE.type != "cpu" and (a.case in DIFFUSION_CASES or a.case == "diffpgd_batch"):
        ap.error(f"{a.case} runs on the CPU only")
    def stats():
        return "".join(f" {k}={v}" for k, v in STATS.items())

    train = parse_train_case(a.case)
    if train is not None:
        ms, params = train_step_case(*train, a.warmup, a.iters, a.size or 128, a.batch)
        print(f"{a.case} {ms:.3f} params={params}" + stats())
    elif a.case == "diffpgd_batch":
        ms, params, calls = diffpgd_batch_case(a.warmup, a.iters, a.size or 64, a.batch)
        print(f"{a.case} {ms:.3f} params={params} calls={calls}" + stats())
    elif a.case in DIFFUSION_CASES:
        ms, params = DIFFUSION_CASES[a.case](a.warmup, a.iters, a.size or 64, a.batch)
        print(f"{a.case} {ms:.3f} params={params}" + stats())
    elif a.case in ("sgemm", "sgemm_bf16"):
        n = a.size or 2048
        ms = gemm_case(torch.float32 if a.case == "sgemm" else torch.bfloat16, a.warmup, a.iters, n)
        print(f"{a.case} {ms:.3f} gflops={2.0 * n ** 3 / (ms * 1e6):.1f}" + stats())
    elif a.case == "tiny_ops":
        ms = tiny_ops_case(a.warmup, a.iters, a.ops)
        print(f"{a.case} {ms:.3f} us_per_op={ms * 1000 / a.ops:.3f}" + stats())
    else:
        ap.error(f"unknown case {a.case}")


if __name__ == "__main__":
    main()
