using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>Small building blocks shared by the encoders and decoders.</summary>
internal static class Blocks
{
    /// <summary>k×k conv (no bias) + BatchNorm + ReLU, state-dict names 0/1 (conv, bn).</summary>
    public static Sequential ConvBnRelu(long inC, long outC, long kernel = 3, long padding = 1, long dilation = 1) => nn.Sequential(
        nn.Conv2d(inC, outC, kernel, padding: padding, dilation: dilation, bias: false), Layers.BatchNorm2d(outC), nn.ReLU(inplace: true));

    /// <summary>U-Net's block: two 3×3 conv (no bias) + BatchNorm + ReLU (state-dict names 0, 1, 3, 4).</summary>
    public static Sequential DoubleConv(long inC, long outC) => nn.Sequential(
        nn.Conv2d(inC, outC, 3, padding: 1, bias: false), Layers.BatchNorm2d(outC), nn.ReLU(inplace: true),
        nn.Conv2d(outC, outC, 3, padding: 1, bias: false), Layers.BatchNorm2d(outC), nn.ReLU(inplace: true));

    /// <summary>Bilinear (align_corners = false) resize of (N, C, H, W) to <paramref name="h"/> × <paramref name="w"/>.</summary>
    public static Tensor Resize(Tensor x, long h, long w)
        => x.size(2) == h && x.size(3) == w ? x : nn.functional.interpolate(x, [h, w], mode: InterpolationMode.Bilinear, align_corners: false);

    /// <summary>Bilinear ×2 up-sampling.</summary>
    public static Tensor Up2(Tensor x) => Resize(x, x.size(2) * 2, x.size(3) * 2);
}
