using static MLNetMedSeg.Torch.Tests.NNData;
using F = MLNetMedSeg.Torch.torch.nn.functional;
using Reduction = MLNetMedSeg.Torch.torch.nn.Reduction;

namespace MLNetMedSeg.Torch.Tests;

/// <summary>
/// Autograd gradients of torch.nn.functional against float64 central finite differences (<see cref="GradCheck"/>).
/// Inputs are deterministic (<see cref="NNData.T"/>) and chosen away from the kinks of piecewise functions.
/// </summary>
[TestClass]
public class GradCheckTests
{
    private static Tensor G(long a, long m, long[] shape, double scale = 1, double offset = 0) => T(a, m, shape, scale, offset, requires_grad: true);

    [TestMethod]
    public void GradCheckDetectsAWrongGradient()
    {
        using var scope = torch.NewDisposeScope();
        // x.detach() * x has numeric derivative 2x but autograd sees only x: the checker must fail.
        var x = G(3, 7, [4], offset: 1);
        Assert.ThrowsException<AssertFailedException>(() => GradCheck.Check(a => a[0].detach() * a[0], [x], name: "detach"));
        // an input that does not influence the output is reported instead of passing vacuously
        var y = G(2, 5, [2]);
        Assert.ThrowsException<AssertFailedException>(() => GradCheck.Check(a => a[0] * 2, [x, y], name: "unused"));
        // and a correct gradient passes
        GradCheck.Check(a => a[0] * a[0] * a[0], [x], name: "cube");
    }

    [TestMethod]
    public void Conv2d()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(7, 23, [1, 4, 5, 5]);
        var w = G(5, 17, [4, 2, 3, 3]);
        var b = G(3, 7, [4]);
        GradCheck.Check(a => F.conv2d(a[0], a[1], a[2], stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2), [x, w, b],
            name: "conv2d stride/padding/dilation/groups");
        var w1 = G(5, 17, [3, 4, 2, 2]);
        GradCheck.Check(a => F.conv2d(a[0], a[1]), [x, w1], name: "conv2d plain");
    }

    [TestMethod]
    public void ConvTranspose2d()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(7, 23, [1, 4, 3, 3]);
        var w = G(5, 17, [4, 1, 3, 3]);
        var b = G(3, 7, [2]);
        GradCheck.Check(a => F.conv_transpose2d(a[0], a[1], a[2], stride: [2, 1], padding: [1, 0], output_padding: [1, 0], groups: 2,
            dilation: [1, 2]), [x, w, b], name: "conv_transpose2d");
    }

    [TestMethod]
    public void LinearAndPooling()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(7, 23, [2, 5]);
        var w = G(5, 17, [3, 5]);
        var b = G(3, 7, [3]);
        GradCheck.Check(a => F.linear(a[0], a[1], a[2]), [x, w, b], name: "linear");
        var img = G(7, 23, [1, 2, 5, 5]);
        GradCheck.Check(a => F.avg_pool2d(a[0], [3], stride: [2], padding: [1], count_include_pad: false), [img], name: "avg_pool2d");
        GradCheck.Check(a => F.adaptive_avg_pool2d(a[0], [2, 3]), [img], name: "adaptive_avg_pool2d");
        // distinct values: the max is unique in every window, so max pooling is differentiable there
        var distinct = torch.tensor(Enumerable.Range(0, 50).Select(k => (k * 17 % 50) / 10.0).ToArray(), [1, 2, 5, 5], requires_grad: true);
        GradCheck.Check(a => F.max_pool2d(a[0], [2], stride: [1]), [distinct], name: "max_pool2d");
    }

    [TestMethod]
    public void Normalizations()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(7, 19, [3, 2, 2, 2], scale: 4);
        var w = G(3, 7, [2], offset: 1);
        var b = G(2, 5, [2]);
        GradCheck.Check(a => F.batch_norm(a[0], null, null, a[1], a[2], training: true), [x, w, b], name: "batch_norm training");
        var rm = torch.tensor(new double[] { 0.1, -0.2 });
        var rv = torch.tensor(new double[] { 1.5, 0.5 });
        GradCheck.Check(a => F.batch_norm(a[0], rm, rv, a[1], a[2], training: false), [x, w, b], name: "batch_norm eval");

        var gx = G(5, 23, [2, 4, 3], scale: 3);
        var gw = G(3, 7, [4], offset: 1);
        var gb = G(2, 5, [4]);
        GradCheck.Check(a => F.group_norm(a[0], 2, a[1], a[2]), [gx, gw, gb], name: "group_norm");

        var lx = G(4, 11, [2, 2, 3], scale: 2);
        var lw = G(3, 7, [2, 3], offset: 1);
        var lb = G(2, 5, [2, 3]);
        GradCheck.Check(a => F.layer_norm(a[0], [2, 3], a[1], a[2]), [lx, lw, lb], name: "layer_norm");
    }

    [TestMethod]
    public void Activations()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(5, 13, [2, 4], scale: 6);
        GradCheck.Check(a => F.gelu(a[0]), [x], name: "gelu");
        GradCheck.Check(a => F.gelu(a[0], "tanh"), [x], name: "gelu tanh");
        GradCheck.Check(a => F.silu(a[0]), [x], name: "silu");
        GradCheck.Check(a => a[0].sigmoid() + a[0].tanh() + F.softplus(a[0], 2, 1), [x], name: "sigmoid+tanh+softplus");
        GradCheck.Check(a => F.leaky_relu(a[0], 0.1) + F.relu(a[0]), [x], name: "leaky_relu+relu");
        GradCheck.Check(a => F.softmax(a[0], 1), [x], name: "softmax");
        GradCheck.Check(a => F.log_softmax(a[0], 0), [x], name: "log_softmax");
    }

    [TestMethod]
    public void Resampling()
    {
        using var scope = torch.NewDisposeScope();
        var img = G(5, 17, [1, 2, 3, 4]);
        GradCheck.Check(a => F.interpolate(a[0], scale_factor: [1.5], mode: InterpolationMode.Bilinear), [img], name: "bilinear scale");
        GradCheck.Check(a => F.interpolate(a[0], size: [5, 7], mode: InterpolationMode.Bilinear, align_corners: true), [img], name: "bilinear ac");
        GradCheck.Check(a => F.interpolate(a[0], size: [4, 5], mode: InterpolationMode.Bicubic), [img], name: "bicubic");

        var grid = G(7, 31, [1, 2, 3, 2], scale: 1.9);
        GradCheck.Check(a => F.grid_sample(a[0], a[1]), [img, grid], name: "grid_sample bilinear zeros");
        GradCheck.Check(a => F.grid_sample(a[0], a[1], padding_mode: GridPaddingMode.Border, align_corners: true), [img, grid],
            name: "grid_sample bilinear border");
        var theta = G(3, 7, [1, 2, 3], scale: 0.5, offset: 0.3);
        GradCheck.Check(a => F.grid_sample(a[0], F.affine_grid(a[1], [1, 2, 3, 3])), [img, theta], name: "affine_grid + grid_sample");
    }

    [TestMethod]
    public void EmbeddingWeights()
    {
        using var scope = torch.NewDisposeScope();
        var w = G(5, 13, [4, 3]);
        var idx = torch.tensor(new long[] { 3, 0, 3, 1 }, [2, 2]);
        GradCheck.Check(a => F.embedding(idx, a[0]), [w], name: "embedding");
    }

    [TestMethod]
    public void BinaryCrossEntropyLosses()
    {
        using var scope = torch.NewDisposeScope();
        var p = G(5, 13, [2, 1, 2, 3], scale: 0.8, offset: 0.5);   // probabilities in (0.1, 0.9)
        var t = T(3, 7, [2, 1, 2, 3], offset: 0.5);
        var pixelWeights = T(2, 9, [2, 1, 2, 3], offset: 1.0);
        foreach (var r in new[] { Reduction.None, Reduction.Mean, Reduction.Sum })
            GradCheck.Check(a => F.binary_cross_entropy(a[0], t, pixelWeights, r), [p], name: $"bce per-pixel weights {r}");
        var broadcastWeights = torch.tensor(new double[] { 1, 2, 3 }, [1, 1, 1, 3]);
        GradCheck.Check(a => F.binary_cross_entropy(a[0], t, broadcastWeights), [p], name: "bce broadcast weights");

        var logits = G(5, 13, [2, 1, 2, 3], scale: 4);
        var posWeight = torch.tensor(new double[] { 1, 2, 0.5 });
        foreach (var r in new[] { Reduction.None, Reduction.Mean, Reduction.Sum })
            GradCheck.Check(a => F.binary_cross_entropy_with_logits(a[0], t, pixelWeights, posWeight, r), [logits],
                name: $"bce_with_logits weight+pos_weight {r}");
    }

    [TestMethod]
    public void RegressionLosses()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(5, 11, [2, 3]);
        var y = G(3, 7, [2, 3], offset: 0.05);   // every |x - y| is well away from 0
        foreach (var r in new[] { Reduction.None, Reduction.Mean, Reduction.Sum })
        {
            GradCheck.Check(a => F.mse_loss(a[0], a[1], r), [x, y], name: $"mse {r}");
            GradCheck.Check(a => F.l1_loss(a[0], a[1], r), [x, y], name: $"l1 {r}");
        }
    }

    [TestMethod]
    public void ClassificationLosses()
    {
        using var scope = torch.NewDisposeScope();
        var x = G(7, 19, [2, 3, 2, 2], scale: 3);
        var target = torch.tensor(new long[] { 0, 2, 1, 1, 2, 0, -100, 1 }, [2, 2, 2]);
        var cw = torch.tensor(new double[] { 0.5, 2.0, 1.0 });
        foreach (var r in new[] { Reduction.None, Reduction.Mean, Reduction.Sum })
        {
            GradCheck.Check(a => F.cross_entropy(a[0], target, cw, reduction: r), [x], name: $"cross_entropy weighted {r}");
            GradCheck.Check(a => F.nll_loss(a[0], target, cw, reduction: r), [x], name: $"nll weighted {r}");
        }
        GradCheck.Check(a => F.cross_entropy(a[0], target, cw, label_smoothing: 0.2), [x], name: "cross_entropy smoothing");
        var probs = T(3, 11, [2, 3, 2, 2]).softmax(1);
        GradCheck.Check(a => F.cross_entropy(a[0], probs), [x], name: "cross_entropy probabilities");
    }

    [TestMethod]
    public void ScaledDotProductAttention()
    {
        using var scope = torch.NewDisposeScope();
        // softmax(Q K^T / sqrt(d)) V with K^T given directly as (B, d, m)
        var q = G(5, 13, [2, 3, 4], scale: 2);
        var kt = G(7, 17, [2, 4, 5], scale: 2);
        var v = G(3, 11, [2, 5, 4]);
        GradCheck.Check(a => torch.bmm(F.softmax(torch.bmm(a[0], a[1]) / Math.Sqrt(4), -1), a[2]), [q, kt, v], name: "attention bmm");
        // multi-head form with 4-D matmul broadcasting: (B, h, n, d) x (B, h, d, m)
        var q4 = G(5, 13, [1, 2, 3, 2], scale: 2);
        var kt4 = G(7, 17, [1, 2, 2, 3], scale: 2);
        var v4 = G(3, 11, [1, 2, 3, 2]);
        GradCheck.Check(a => a[0].matmul(a[1]).div(Math.Sqrt(2)).softmax(-1).matmul(a[2]), [q4, kt4, v4], name: "attention matmul");
    }
}
