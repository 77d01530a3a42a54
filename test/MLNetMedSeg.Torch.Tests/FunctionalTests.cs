using static MLNetMedSeg.Torch.Tests.NNData;
using F = MLNetMedSeg.Torch.torch.nn.functional;
using Reduction = MLNetMedSeg.Torch.torch.nn.Reduction;

namespace MLNetMedSeg.Torch.Tests;

/// <summary>
/// Forward values of torch.nn.functional and the activation/matmul tensor methods. Hand-computed values are derived in
/// comments; the others were computed once with Debian's PyTorch 1.13 (/usr/bin/python3) on the same inputs, built with
/// <c>seq(n, a, m) = [((k*a)%m)/m - 0.5 for k in range(n)]</c> (see <see cref="NNData"/>), in float64, and pasted below.
/// </summary>
[TestClass]
public partial class FunctionalTests
{
    // ------------------------------------------------------------ activations

    [TestMethod]
    public void PiecewiseLinearActivationsByHand()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { -2, -0.5, 0, 1.5 });
        CollectionAssert.AreEqual(new double[] { 0, 0, 0, 1.5 }, F.relu(x).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 0, 0, 0, 1.5 }, x.relu().ToArray<double>());
        CollectionAssert.AreEqual(new double[] { -0.02, -0.005, 0, 1.5 }, F.leaky_relu(x).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { -0.2, -0.05, 0, 1.5 }, x.leaky_relu(0.1).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { -0.5, -0.5, 0, 1 }, F.hardtanh(x, -0.5, 1).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { -1, -0.5, 0, 1 }, x.hardtanh().ToArray<double>());
        // the input is untouched by the out-of-place forms
        CollectionAssert.AreEqual(new double[] { -2, -0.5, 0, 1.5 }, x.ToArray<double>());
    }

    [TestMethod]
    public void InPlaceActivationsModifyAndReturnTheSameTensor()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { -2, -0.5, 0, 1.5 });
        Assert.AreSame(x, x.relu_());
        CollectionAssert.AreEqual(new double[] { 0, 0, 0, 1.5 }, x.ToArray<double>());
        var y = torch.tensor(new double[] { 0, -1000 });
        Assert.AreSame(y, y.sigmoid_());
        CollectionAssert.AreEqual(new double[] { 0.5, 0 }, y.ToArray<double>());
        var z = torch.tensor(new double[] { -4, 4 });
        Assert.AreSame(z, F.leaky_relu(z, 0.25, inplace: true));
        CollectionAssert.AreEqual(new double[] { -1, 4 }, z.ToArray<double>());
        var u = torch.tensor(new double[] { 0, 100 });
        Assert.AreSame(u, u.tanh_());
        CollectionAssert.AreEqual(new double[] { 0, 1 }, u.ToArray<double>());
        var s = torch.tensor(new double[] { 0 });
        Assert.AreSame(s, F.silu(s, inplace: true));
        CollectionAssert.AreEqual(new double[] { 0 }, s.ToArray<double>());
    }

    [TestMethod]
    public void SmoothActivationsMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var x = T(5, 13, [8], scale: 6);
        AssertClose(Silu, F.silu(x), what: "silu");
        AssertClose(GeluNone, F.gelu(x), what: "gelu");
        AssertClose(GeluTanh, x.gelu("tanh"), what: "gelu tanh");
        AssertClose(Sigmoid, F.sigmoid(x), what: "sigmoid");
        AssertClose(Tanh, F.tanh(x), what: "tanh");
        AssertClose(SoftplusBeta2Thr1, F.softplus(x, 2, 1), what: "softplus");
        var x2 = T(5, 13, [2, 4], scale: 6);
        AssertClose(SoftmaxDim1, F.softmax(x2, 1), what: "softmax");
        AssertClose(SoftmaxDim1, x2.softmax(-1), what: "softmax dim -1");
        AssertClose(LogSoftmaxDim0, F.log_softmax(x2, 0), what: "log_softmax");
        Assert.ThrowsException<ArgumentException>(() => x.gelu("fast"));
    }

    [TestMethod]
    public void SoftmaxWithDtypeComputesInThatType()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { 0, 0, 0, 0 }, [2, 2]);
        var y = x.softmax(1, ScalarType.Float64);
        Assert.AreEqual(ScalarType.Float64, y.dtype);
        CollectionAssert.AreEqual(new double[] { 0.5, 0.5, 0.5, 0.5 }, y.ToArray<double>());
    }

    // ------------------------------------------------------------ matrix products

    [TestMethod]
    public void MatmulBmmAndLinearByHand()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new double[] { 1, 2, 3, 4 }, [2, 2]);
        var b = torch.tensor(new double[] { 5, 6, 7, 8 }, [2, 2]);
        // [[1*5+2*7, 1*6+2*8], [3*5+4*7, 3*6+4*8]]
        CollectionAssert.AreEqual(new double[] { 19, 22, 43, 50 }, torch.matmul(a, b).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 19, 22, 43, 50 }, a.matmul(b).ToArray<double>());
        // 1-D x 1-D is a dot product with a 0-d result
        var dot = torch.tensor(new double[] { 1, 2, 3 }).matmul(torch.tensor(new double[] { 4, 5, 6 }));
        Assert.AreEqual(0, dot.shape.Length);
        Assert.AreEqual(32.0, dot.item<double>());
        // a batch (2, 2, 2) times a broadcast (2, 2) matrix
        var batch = torch.tensor(new double[] { 1, 2, 3, 4, 1, 0, 0, 1 }, [2, 2, 2]);
        var m = batch.matmul(b);
        CollectionAssert.AreEqual(new long[] { 2, 2, 2 }, m.shape);
        CollectionAssert.AreEqual(new double[] { 19, 22, 43, 50, 5, 6, 7, 8 }, m.ToArray<double>());
        // bmm: second batch multiplies by the identity
        var other = torch.tensor(new double[] { 5, 6, 7, 8, 1, 0, 0, 1 }, [2, 2, 2]);
        CollectionAssert.AreEqual(new double[] { 19, 22, 43, 50, 1, 0, 0, 1 }, torch.bmm(batch, other).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 19, 22, 43, 50, 1, 0, 0, 1 }, batch.bmm(other).ToArray<double>());
        Assert.ThrowsException<TorchException>(() => torch.bmm(a, b), "bmm needs 3-D operands");
        // linear: x W^T + b with W = [[1,0,-1],[2,1,0]], b = [0.5,-1]: [1-3+0.5, 2+2-1]
        var x = torch.tensor(new double[] { 1, 2, 3 }, [1, 3]);
        var w = torch.tensor(new double[] { 1, 0, -1, 2, 1, 0 }, [2, 3]);
        var bias = torch.tensor(new double[] { 0.5, -1 });
        CollectionAssert.AreEqual(new double[] { -1.5, 3 }, F.linear(x, w, bias).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { -2, 4 }, F.linear(x, w).ToArray<double>());
    }

    // ------------------------------------------------------------ convolutions

    [TestMethod]
    public void Conv2dByHand()
    {
        using var scope = torch.NewDisposeScope();
        // x = [[1,2,3],[4,5,6],[7,8,9]], k = [[1,2],[3,4]]
        var x = torch.tensor(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, [1, 1, 3, 3]);
        var k = torch.tensor(new double[] { 1, 2, 3, 4 }, [1, 1, 2, 2]);
        // (0,0): 1+4+12+20 = 37, (0,1): 2+6+15+24 = 47, (1,0): 4+10+21+32 = 67, (1,1): 5+12+24+36 = 77
        var y = F.conv2d(x, k);
        CollectionAssert.AreEqual(new long[] { 1, 1, 2, 2 }, y.shape);
        CollectionAssert.AreEqual(new double[] { 37, 47, 67, 77 }, y.ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 37.5, 47.5, 67.5, 77.5 }, F.conv2d(x, k, torch.tensor(new double[] { 0.5 })).ToArray<double>());
        // padding 1, stride 2: windows with top-left (-1,-1): 1*4; (-1,1): 2*3+3*4; (1,-1): 4*2+7*4; (1,1): 5+12+24+36
        var p = F.conv2d(x, k, stride: [2], padding: [1]);
        CollectionAssert.AreEqual(new double[] { 4, 18, 36, 77 }, p.ToArray<double>());
        // dilation 2 with a 2x2 kernel touches the corners: 1*1 + 3*2 + 7*3 + 9*4 = 64
        CollectionAssert.AreEqual(new double[] { 64 }, F.conv2d(x, k, dilation: [2]).ToArray<double>());
    }

    [TestMethod]
    public void Conv2dStridePaddingDilationGroupsMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // F.conv2d(T(7,23,[1,4,4,4]), T(5,17,[4,2,2,2]), [0.1,-0.2,0.3,0.0], stride=(2,1), padding=(1,0), dilation=(1,2), groups=2)
        var y = F.conv2d(T(7, 23, [1, 4, 4, 4]), T(5, 17, [4, 2, 2, 2]), torch.tensor(new double[] { 0.1, -0.2, 0.3, 0.0 }),
            stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2);
        CollectionAssert.AreEqual(new long[] { 1, 4, 3, 2 }, y.shape);
        AssertClose(Conv2dAll, y, what: "conv2d");
        Assert.ThrowsException<TorchException>(() => F.conv2d(T(7, 23, [1, 3, 4, 4]), T(5, 17, [4, 2, 2, 2])), "channel mismatch");
    }

    [TestMethod]
    public void ConvTranspose2dMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // F.conv_transpose2d(T(3,11,[1,2,2,3]), T(11,29,[2,3,2,2]), [0.5,-0.5,0.25], stride=2, padding=1, output_padding=(1,0))
        var y = F.conv_transpose2d(T(3, 11, [1, 2, 2, 3]), T(11, 29, [2, 3, 2, 2]), torch.tensor(new double[] { 0.5, -0.5, 0.25 }),
            stride: [2], padding: [1], output_padding: [1, 0]);
        CollectionAssert.AreEqual(new long[] { 1, 3, 3, 4 }, y.shape);
        AssertClose(ConvT, y, what: "conv_transpose2d");
        // F.conv_transpose2d(T(5,13,[1,2,2,2]), T(3,7,[2,1,2,2]), None, stride=1, padding=0, groups=2, dilation=2)
        var g = F.conv_transpose2d(T(5, 13, [1, 2, 2, 2]), T(3, 7, [2, 1, 2, 2]), groups: 2, dilation: [2]);
        CollectionAssert.AreEqual(new long[] { 1, 2, 4, 4 }, g.shape);
        AssertClose(ConvTGroupsDil, g, what: "conv_transpose2d groups/dilation");
    }

    // ------------------------------------------------------------ pooling

    [TestMethod]
    public void PoolingByHand()
    {
        using var scope = torch.NewDisposeScope();
        // x[r, c] = 4r + c on a 4x4 grid
        var x = torch.tensor(Enumerable.Range(0, 16).Select(v => (double)v).ToArray(), [1, 1, 4, 4]);
        CollectionAssert.AreEqual(new double[] { 5, 7, 13, 15 }, F.max_pool2d(x, [2]).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 2.5, 4.5, 10.5, 12.5 }, F.avg_pool2d(x, [2, 2]).ToArray<double>());
        // stride 1: 3x3 windows of maxima x[r+1, c+1]
        CollectionAssert.AreEqual(new double[] { 5, 6, 7, 9, 10, 11, 13, 14, 15 }, F.max_pool2d(x, [2], stride: [1]).ToArray<double>());
        // padding 1, kernel 2, stride 2: windows rows/cols {-1..0, 1..2, 3..4}
        CollectionAssert.AreEqual(new double[] { 0, 2, 3, 8, 10, 11, 12, 14, 15 }, F.max_pool2d(x, [2], padding: [1]).ToArray<double>());
        // window sums 0,3,3,12,30,18,12,27,15 over 4 (padding counted) or over the real element counts 1,2,1,2,4,2,1,2,1
        CollectionAssert.AreEqual(new double[] { 0, 0.75, 0.75, 3, 7.5, 4.5, 3, 6.75, 3.75 }, F.avg_pool2d(x, [2], padding: [1]).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 0, 1.5, 3, 6, 7.5, 9, 12, 13.5, 15 },
            F.avg_pool2d(x, [2], padding: [1], count_include_pad: false).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 10, 18, 42, 50 }, F.avg_pool2d(x, [2], divisor_override: 1).ToArray<double>());
        // ceil_mode keeps the partial last window: kernel 3 stride 2 on 4 -> 2 outputs instead of 1
        CollectionAssert.AreEqual(new double[] { 10, 11, 14, 15 }, F.max_pool2d(x, [3], stride: [2], ceil_mode: true).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 7.5 }, F.adaptive_avg_pool2d(x, [1]).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 15 }, F.adaptive_max_pool2d(x, [1, 1]).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 2.5, 4.5, 10.5, 12.5 }, F.adaptive_avg_pool2d(x, [2, 2]).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 5, 7, 13, 15 }, F.adaptive_max_pool2d(x, [2]).ToArray<double>());
    }

    // ------------------------------------------------------------ normalization

    [TestMethod]
    public void BatchNormMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var x = T(7, 19, [3, 2, 2, 2], scale: 4);
        var w = torch.tensor(new double[] { 2, -1 });
        var b = torch.tensor(new double[] { 0.5, 0.25 });
        var rm = torch.tensor(new double[] { 0.1, -0.2 });
        var rv = torch.tensor(new double[] { 1.5, 0.5 });
        // evaluation: (x - rm) / sqrt(rv + eps) * w + b, running stats untouched
        AssertClose(BatchNormEval, F.batch_norm(x, rm, rv, w, b, training: false), what: "batch_norm eval");
        CollectionAssert.AreEqual(new double[] { 0.1, -0.2 }, rm.ToArray<double>());
        // training: batch statistics; running stats updated in place with momentum 0.3
        AssertClose(BatchNormTrain, F.batch_norm(x, rm, rv, w, b, training: true, momentum: 0.3), what: "batch_norm train");
        AssertClose(BatchNormTrainRunningMean, rm, what: "running_mean");
        AssertClose(BatchNormTrainRunningVar, rv, what: "running_var");
        // training without running statistics is allowed; evaluation without them is not
        AssertClose(BatchNormTrain, F.batch_norm(x, null, null, w, b, training: true), what: "batch_norm train without stats");
        Assert.ThrowsException<TorchException>(() => F.batch_norm(x, null, null, w, b, training: false));
    }

    [TestMethod]
    public void GroupNormAndLayerNormMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // F.group_norm(T(5,23,[2,4,3])*3, 2, [1,2,-1,0.5], [0,0.1,0.2,0.3])
        var gx = T(5, 23, [2, 4, 3], scale: 3);
        var y = F.group_norm(gx, 2, torch.tensor(new double[] { 1, 2, -1, 0.5 }), torch.tensor(new double[] { 0, 0.1, 0.2, 0.3 }));
        AssertClose(GroupNorm, y, what: "group_norm");
        Assert.ThrowsException<TorchException>(() => F.group_norm(gx, 3), "4 channels do not split into 3 groups");
        // F.layer_norm(T(4,11,[2,2,3])*2, [2,3], T(3,7,[2,3]), T(2,5,[2,3]))
        var l = F.layer_norm(T(4, 11, [2, 2, 3], scale: 2), [2, 3], T(3, 7, [2, 3]), T(2, 5, [2, 3]));
        AssertClose(LayerNorm, l, what: "layer_norm");
        // without affine: every normalized slice has mean 0
        var plain = F.layer_norm(T(4, 11, [2, 2, 3], scale: 2), [3]);
        Assert.AreEqual(0.0, plain.sum().item<double>(), 1e-12);
    }

    // ------------------------------------------------------------ dropout and embedding

    [TestMethod]
    public void DropoutIsReproducibleWithAGeneratorAndIdentityWhenNotTraining()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.ones([1000], ScalarType.Float64);
        var eval = F.dropout(x, 0.5, training: false);
        CollectionAssert.AreEqual(x.ToArray<double>(), eval.ToArray<double>());
        CollectionAssert.AreEqual(x.ToArray<double>(), F.dropout(x, 0.0).ToArray<double>());
        CollectionAssert.AreEqual(new double[1000], F.dropout(x, 1.0).ToArray<double>());

        using var g1 = new Generator(11);
        using var g2 = new Generator(11);
        var a = F.dropout(x, 0.25, generator: g1).ToArray<double>();
        var b = F.dropout(x, 0.25, generator: g2).ToArray<double>();
        CollectionAssert.AreEqual(a, b, "same seed, same mask");
        // kept elements are scaled by 1/(1-p); about a quarter are dropped
        Assert.IsTrue(a.All(v => v == 0 || Math.Abs(v - 1 / 0.75) < 1e-12));
        int dropped = a.Count(v => v == 0);
        Assert.IsTrue(dropped > 180 && dropped < 320, $"{dropped} of 1000 dropped with p = 0.25");
        var c = F.dropout(x, 0.25, generator: g1).ToArray<double>();
        CollectionAssert.AreNotEqual(a, c, "the generator advances");
        Assert.ThrowsException<TorchValueException>(() => F.dropout(x, 1.5));
    }

    [TestMethod]
    public void Dropout2dDropsWholeChannels()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.ones([4, 50, 3, 3], ScalarType.Float64);
        using var g = new Generator(3);
        var y = F.dropout2d(x, 0.5, generator: g).ToArray<double>();
        int droppedPlanes = 0;
        for (int plane = 0; plane < 200; plane++)
        {
            var v = y.Skip(plane * 9).Take(9).Distinct().ToArray();
            Assert.AreEqual(1, v.Length, $"plane {plane} is not uniform");
            Assert.IsTrue(v[0] == 0 || v[0] == 2);
            if (v[0] == 0) droppedPlanes++;
        }
        Assert.IsTrue(droppedPlanes > 60 && droppedPlanes < 140, $"{droppedPlanes} of 200 planes dropped");
        CollectionAssert.AreEqual(x.ToArray<double>(), F.dropout2d(x, 0.5, training: false).ToArray<double>());
    }

    [TestMethod]
    public void EmbeddingLooksUpRows()
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.tensor(new double[] { 0, 1, 10, 11, 20, 21, 30, 31 }, [4, 2]);
        var idx = torch.tensor(new long[] { 3, 0, 1, 1 }, [2, 2]);
        var e = F.embedding(idx, w);
        CollectionAssert.AreEqual(new long[] { 2, 2, 2 }, e.shape);
        CollectionAssert.AreEqual(new double[] { 30, 31, 0, 1, 10, 11, 10, 11 }, e.ToArray<double>());
        Assert.ThrowsException<TorchIndexException>(() => F.embedding(torch.tensor(new long[] { 4 }), w), "index out of range");
    }

    // ------------------------------------------------------------ resampling

    [TestMethod]
    public void InterpolateByHand()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 1, 2, 3, 4 }, [1, 1, 2, 2]);
        CollectionAssert.AreEqual(new double[] { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 },
            F.interpolate(x, scale_factor: [2]).ToArray<double>());
        // nearest to 3x3: source index floor(i * 2/3) = 0, 0, 1
        CollectionAssert.AreEqual(new double[] { 1, 1, 2, 1, 1, 2, 3, 3, 4 }, F.interpolate(x, size: [3, 3]).ToArray<double>());
        // bilinear with aligned corners to 3x3: the midpoints are averages
        CollectionAssert.AreEqual(new double[] { 1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4 },
            F.interpolate(x, size: [3], mode: InterpolationMode.Bilinear, align_corners: true).ToArray<double>());
        Assert.ThrowsException<ArgumentException>(() => F.interpolate(x, size: [3, 3], scale_factor: [2]));
        Assert.ThrowsException<ArgumentException>(() => F.interpolate(x));
        Assert.ThrowsException<ArgumentException>(() => F.interpolate(x, size: [3, 3], align_corners: true), "nearest has no align_corners");
        Assert.ThrowsException<TorchValueException>(() => F.interpolate(x, size: [3, 3], mode: InterpolationMode.Trilinear), "trilinear needs 5-D");
        // 5-D nearest and trilinear
        var v = torch.ones([1, 1, 2, 2, 2], ScalarType.Float64);
        CollectionAssert.AreEqual(new long[] { 1, 1, 4, 4, 4 }, F.interpolate(v, scale_factor: [2]).shape);
        var tri = F.interpolate(v, size: [3, 3, 3], mode: InterpolationMode.Trilinear);
        Assert.AreEqual(27.0, tri.sum().item<double>(), 1e-12);
    }

    [TestMethod]
    public void InterpolateMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var x = T(3, 7, [1, 1, 3, 4]);
        // F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False): the scale itself drives the mapping
        var s = F.interpolate(x, scale_factor: [1.5], mode: InterpolationMode.Bilinear, align_corners: false);
        CollectionAssert.AreEqual(new long[] { 1, 1, 4, 6 }, s.shape);
        AssertClose(BilinearScale15, s, what: "bilinear scale 1.5");
        AssertClose(BilinearScale15, F.interpolate(x, scale_factor: [1.5, 1.5], mode: InterpolationMode.Bilinear), what: "default align_corners");
        AssertClose(BilinearSizeAC, F.interpolate(x, size: [4, 3], mode: InterpolationMode.Bilinear, align_corners: true), what: "bilinear size ac");
        AssertClose(BicubicSize, F.interpolate(x, size: [5, 5], mode: InterpolationMode.Bicubic), what: "bicubic");
        var n = F.interpolate(x, scale_factor: [1.7]);
        CollectionAssert.AreEqual(new long[] { 1, 1, 5, 6 }, n.shape);
        AssertClose(NearestScale17, n, what: "nearest scale 1.7");
    }

    [TestMethod]
    public void AffineGridAndGridSampleMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var theta = torch.tensor(new double[] { 0.9, -0.2, 0.1, 0.3, 1.1, -0.05 }, [1, 2, 3]);
        var g = F.affine_grid(theta, [1, 1, 2, 3]);
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 2 }, g.shape);
        AssertClose(AffineGrid, g, what: "affine_grid");
        AssertClose(AffineGridAC, F.affine_grid(theta, [1, 1, 2, 3], align_corners: true), what: "affine_grid align_corners");
        Assert.ThrowsException<TorchValueException>(() => F.affine_grid(theta, [2, 1, 2, 3]), "batch size mismatch");

        var input = T(5, 17, [1, 2, 3, 4]);
        var grid = T(7, 31, [1, 2, 3, 2], scale: 2.6);
        AssertClose(GridBilinearZeros, F.grid_sample(input, grid), what: "bilinear zeros");
        AssertClose(GridNearestBorder, F.grid_sample(input, grid, GridSampleMode.Nearest, GridPaddingMode.Border), what: "nearest border");
        AssertClose(GridBilinearReflectionAC, F.grid_sample(input, grid, GridSampleMode.Bilinear, GridPaddingMode.Reflection, align_corners: true),
            what: "bilinear reflection");
    }

    [TestMethod]
    public void IdentityAffineGridSamplesTheInputBack()
    {
        using var scope = torch.NewDisposeScope();
        var input = T(5, 17, [2, 3, 4, 5]);
        var theta = torch.tensor(new double[] { 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0 }, [2, 2, 3]);
        foreach (bool ac in new[] { false, true })
        {
            var grid = F.affine_grid(theta, [2, 3, 4, 5], align_corners: ac);
            AssertClose(input.ToArray<double>(), F.grid_sample(input, grid, align_corners: ac), 1e-12, $"bilinear align_corners={ac}");
            AssertClose(input.ToArray<double>(), F.grid_sample(input, grid, GridSampleMode.Nearest, align_corners: ac), 1e-12, $"nearest align_corners={ac}");
        }
    }

    // ------------------------------------------------------------ losses

    [TestMethod]
    public void BinaryCrossEntropyMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var logits = T(5, 13, [2, 1, 2, 3], scale: 4);
        var p = logits.sigmoid();
        var t = T(3, 7, [2, 1, 2, 3], offset: 0.5);
        var w = T(2, 9, [2, 1, 2, 3], offset: 1.0);
        var none = F.binary_cross_entropy(p, t, reduction: Reduction.None);
        CollectionAssert.AreEqual(new long[] { 2, 1, 2, 3 }, none.shape);
        AssertClose(BceNone, none, 1e-10, "bce none");
        Assert.AreEqual(BceMean, F.binary_cross_entropy(p, t).item<double>(), 1e-10);
        Assert.AreEqual(BceWeightedMean, F.binary_cross_entropy(p, t, w).item<double>(), 1e-10);
        // a (1,1,1,3) weight broadcast over the target
        var wb = torch.tensor(new double[] { 1, 2, 3 }, [1, 1, 1, 3]);
        Assert.AreEqual(BceWeightedBroadcastSum, F.binary_cross_entropy(p, t, wb, Reduction.Sum).item<double>(), 1e-10);
        Assert.ThrowsException<TorchValueException>(() => F.binary_cross_entropy(p, torch.zeros([2, 1, 2, 2], ScalarType.Float64)), "shape mismatch");

        Assert.AreEqual(BceLogitsMean, F.binary_cross_entropy_with_logits(logits, t).item<double>(), 1e-10);
        Assert.AreEqual(BceLogitsWeightPosWeightMean,
            F.binary_cross_entropy_with_logits(logits, t, w, torch.tensor(new double[] { 3 })).item<double>(), 1e-10);
        Assert.AreEqual(BceLogitsPosWeightSum,
            F.binary_cross_entropy_with_logits(logits, t, pos_weight: torch.tensor(new double[] { 1, 2, 0.5 }), reduction: Reduction.Sum).item<double>(), 1e-10);
    }

    [TestMethod]
    public void RegressionLossesMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var a = T(5, 11, [2, 3]);
        var b = T(3, 7, [2, 3]);
        Assert.AreEqual(MseMean, F.mse_loss(a, b).item<double>(), 1e-14);
        Assert.AreEqual(MseSum, F.mse_loss(a, b, Reduction.Sum).item<double>(), 1e-14);
        Assert.AreEqual(L1Mean, F.l1_loss(a, b).item<double>(), 1e-14);
        Assert.AreEqual(L1Sum, F.l1_loss(a, b, Reduction.Sum).item<double>(), 1e-14);
        Assert.AreEqual(MseBroadcastMean, F.mse_loss(a, torch.tensor(new double[] { 0.1, -0.2, 0.3 })).item<double>(), 1e-14);
        // by hand: (1-0)^2, (2-4)^2 -> none [1, 4], mean 2.5; l1 [1, 2]
        var x = torch.tensor(new double[] { 1, 2 });
        var y = torch.tensor(new double[] { 0, 4 });
        CollectionAssert.AreEqual(new double[] { 1, 4 }, F.mse_loss(x, y, Reduction.None).ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 1, 2 }, F.l1_loss(x, y, Reduction.None).ToArray<double>());
        Assert.AreEqual(2.5, F.mse_loss(x, y).item<double>());
    }

    [TestMethod]
    public void CrossEntropyAndNllMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        var x = T(7, 19, [2, 3, 2, 2], scale: 3);
        var target = torch.tensor(new long[] { 0, 2, 1, 1, 2, 0, -100, 1 }, [2, 2, 2]);
        var cw = torch.tensor(new double[] { 0.5, 2.0, 1.0 });
        var none = F.cross_entropy(x, target, reduction: Reduction.None);
        CollectionAssert.AreEqual(new long[] { 2, 2, 2 }, none.shape);
        AssertClose(CeNone, none, 1e-12, "cross_entropy none (the ignored pixel is 0)");
        Assert.AreEqual(CeMean, F.cross_entropy(x, target).item<double>(), 1e-12);
        Assert.AreEqual(CeWeightedMean, F.cross_entropy(x, target, cw).item<double>(), 1e-12);
        Assert.AreEqual(CeWeightedSum, F.cross_entropy(x, target, cw, reduction: Reduction.Sum).item<double>(), 1e-12);
        Assert.AreEqual(CeSmoothMean, F.cross_entropy(x, target, cw, label_smoothing: 0.2).item<double>(), 1e-12);
        // both positional orders (brief: ..., ignore_index, label_smoothing, reduction; PyTorch: ..., ignore_index, reduction, label_smoothing)
        Assert.AreEqual(CeSmoothMean, F.cross_entropy(x, target, cw, -100, 0.2, Reduction.Mean).item<double>(), 1e-12);
        Assert.AreEqual(CeSmoothMean, F.cross_entropy(x, target, cw, -100, Reduction.Mean, 0.2).item<double>(), 1e-12);
        Assert.AreEqual(F.cross_entropy(x, target, cw, -100, Reduction.Sum, 0.2).item<double>(),
            F.cross_entropy(x, target, cw, -100, 0.2, Reduction.Sum).item<double>());
        var clamped = torch.tensor(new long[] { 0, 2, 1, 1, 2, 0, 0, 1 }, [2, 2, 2]);
        Assert.AreEqual(CeIgnore1Mean, F.cross_entropy(x, clamped, ignore_index: 1).item<double>(), 1e-12);
        // class-probability targets: softmax(T(3,11,[2,3,2,2]), 1)
        var probs = T(3, 11, [2, 3, 2, 2]).softmax(1);
        Assert.AreEqual(CeProbMean, F.cross_entropy(x, probs).item<double>(), 1e-12);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => F.cross_entropy(x, target, label_smoothing: 1.5));

        var lp = x.log_softmax(1);
        Assert.AreEqual(NllMean, F.nll_loss(lp, target).item<double>(), 1e-12);
        Assert.AreEqual(NllWeightedMean, F.nll_loss(lp, target, cw).item<double>(), 1e-12);
        // by hand on one sample: -log p[target]
        var one = torch.tensor(new double[] { Math.Log(0.2), Math.Log(0.5), Math.Log(0.3) }, [1, 3]);
        Assert.AreEqual(-Math.Log(0.5), F.nll_loss(one, torch.tensor(new long[] { 1 })).item<double>(), 1e-15);
        Assert.ThrowsException<TorchIndexException>(() => F.nll_loss(one, torch.tensor(new long[] { 3 })), "target out of range");
    }

    // ------------------------------------------------------------ reference values (PyTorch 1.13, float64)

    // [8]
    private static readonly double[] Silu = [-0.14227761953270035, -0.23089840087325042, 1.3474853989549809, -0.23128634511446072, 0.12863945374876315, 2.352632232793716, -0.2766776177337532, 0.8771685361124005];
    // [8]
    private static readonly double[] GeluNone = [-0.00404969409489031, -0.16918065705686788, 1.5295855374853815, -0.03926283868078076, 0.13644299003499444, 2.5243297910188818, -0.1434018739714512, 1.0104442798747024];
    // [8]
    private static readonly double[] GeluTanh = [-0.0036373920817729943, -0.16923400879654302, 1.5294081401373838, -0.039098270477351794, 0.1364420906922613, 2.524781486156425, -0.14360393885320907, 1.0102422149929446];
    // [8]
    private static readonly double[] Sigmoid = [0.04742587317756678, 0.33351991237247286, 0.8341576279245119, 0.11136009209214777, 0.5574376329113073, 0.9267945159490396, 0.23978726870258613, 0.7602127312974138];
    // [8]
    private static readonly double[] Tanh = [-0.9950547536867305, -0.5994624568881577, 0.9239518001184096, -0.9690777980543531, 0.22675815692505163, 0.9875992160993223, -0.8190242240182181, 0.8190242240182181];
    // [2, 4]
    private static readonly double[] SoftmaxDim1 = [0.008726391575962516, 0.0877107313331385, 0.8815983472693811, 0.02196452982151787, 0.07236598982226541, 0.7273652386218136, 0.018121898168625524, 0.18214687338729557];
    // [2, 4]
    private static readonly double[] LogSoftmaxDim0 = [-3.2695351113129743, -3.2695351113129743, -0.060822460906705976, -3.269535111312974, -0.03876588054374356, -0.03876588054374356, -2.8300532301374752, -0.03876588054374356];
    // [8]
    private static readonly double[] SoftplusBeta2Thr1 = [0.0012378425688652247, 0.11173978610390443, 1.6153846153846156, 0.007790935114394506, 0.47515529845859406, 2.5384615384615388, 0.04742348194768065, 1.1538461538461537];
    // [1, 4, 3, 2]
    private static readonly double[] Conv2dAll = [0.20485933503836315, 0.029667519181585666, -0.11227621483375955, 0.33145780051150897, 0.07698209718670077, -0.2452685421994885, -0.5887468030690537, -0.2959079283887468, 0.07109974424552429, -0.2933503836317136, -0.3764705882352941, -0.26905370843989773, 0.15933503836317137, 0.4010230179028133, 0.6529411764705882, -0.05933503836317133, 0.31662404092071617, 0.5685421994884909, 0.11125319693094629, 0.1253196930946291, -0.42838874680306904, -0.25319693094629153, 0.19565217391304346, -0.08439897698209717];
    // [1, 3, 3, 4]
    private static readonly double[] ConvT = [0.7068965517241379, 0.36363636363636365, 0.6598746081504703, 0.5721003134796239, 0.44200626959247646, 0.7163009404388715, 0.6473354231974922, 0.542319749216301, 0.37617554858934166, 0.3510971786833856, 0.6912225705329154, 0.5595611285266457, -0.6175548589341693, -0.3150470219435737, -0.6551724137931034, -0.6144200626959248, -0.3714733542319749, -0.6050156739811913, -0.6739811912225705, -0.28683385579937304, -0.4373040752351097, -0.3338557993730408, -0.6300940438871474, -0.6332288401253918, 0.4443573667711599, 0.11990595611285265, 0.4161442006269592, 0.3126959247648903, 0.20141065830721, 0.46003134796238243, 0.39106583072100315, 0.2703761755485894, 0.13557993730407522, 0.09482758620689655, 0.4349529780564263, 0.28761755485893414];
    // [1, 2, 4, 4]
    private static readonly double[] ConvTGroupsDil = [0.25, 0.05769230769230768, 0.035714285714285726, 0.008241758241758244, -0.13461538461538464, 0.17307692307692307, -0.01923076923076924, 0.024725274725274735, -0.17857142857142855, -0.041208791208791194, 0.10714285714285715, 0.024725274725274724, 0.09615384615384616, -0.1236263736263736, -0.0576923076923077, 0.07417582417582418, 0.008241758241758237, 0.09065934065934067, -0.013736263736263727, -0.15109890109890112, -0.04120879120879121, 0.04120879120879121, 0.06868131868131867, -0.06868131868131867, 0.002747252747252744, 0.03021978021978021, -0.019230769230769218, -0.21153846153846156, -0.013736263736263729, 0.013736263736263729, 0.09615384615384615, -0.09615384615384615];
    // [3, 2, 2, 2]
    private static readonly double[] BatchNormEval = [-2.9292742090014707, -0.5227659921583335, 1.8837422246848037, -2.2417004327605743, 0.11602321279951171, -1.9680601436525302, 1.6046541816938273, -0.4794291747582149, 3.2588897771665963, -0.8665528802787816, 1.539955336564356, -2.5854873208810223, 0.41374940657837483, -1.6703339498736676, 1.9023803754726907, -0.18170298097935142, 2.9151028890461483, -1.2103397683992299, 1.1961684484439072, -2.9292742090014707, 0.711475600357238, -1.372607756094804, 2.200106569251554, 0.11602321279951171];
    // [3, 2, 2, 2]
    private static readonly double[] BatchNormTrain = [-1.990738936562219, 0.21159864945069032, 2.4139362354636, -1.3614996262728163, 0.25000000000000006, -1.348903263108092, 1.3920737593629229, -0.2068295037451693, 3.672414856042405, -0.10302100569401103, 2.0993165803188987, -1.6761192814175176, 0.47841475187258464, -1.1204885112355076, 1.6204885112355074, 0.02158524812741549, 3.357795200897704, -0.4176406608387124, 1.7846969251741969, -1.990738936562219, 0.7068295037451692, -0.8920737593629228, 1.848903263108092, 0.25000000000000006];
    // [2]
    private static readonly double[] BatchNormTrainRunningMean = [-0.03, -0.17157894736842105];
    // [2]
    private static readonly double[] BatchNormTrainRunningVar = [1.6361495844875344, 0.6280156131956685];
    // [2, 4, 3]
    private static readonly double[] GroupNorm = [-1.2188917148154401, -0.515684956268071, 0.1875218022792983, 1.8814571216533351, 3.2878706387480734, -1.7752180227929846, 0.9931016577015931, 0.17265166697580714, -0.6477983237499788, 1.1341241572378826, -0.3426858260685325, 0.06753916929436063, 0.46492166141127905, 1.2853716521370653, -1.6682483144757654, -1.5955966474999583, 0.04530333395161444, 1.6862033154031866, -1.1836896164664412, 1.188349726047458, 0.529449908682486, 0.464724954341243, 0.7941748630237292, -0.3918448082332206];
    // [2, 2, 3]
    private static readonly double[] LayerNorm = [0.1809754827882164, -0.08919086535256796, 0.6783197126601201, -0.07300817240392786, 0.13242740394229593, -0.9864110591344403, -0.10199048814171735, -0.12842925084702017, 0.8685850169404038, -0.19339030932367424, 0.249253566946856, -0.002488110177146647];
    // [1, 1, 4, 6]
    private static readonly double[] BilinearScale15 = [-0.5, -0.2857142857142857, -8.921435019309294e-17, 0.28571428571428564, 0.0714285714285714, -0.2142857142857143, -0.14285714285714285, -0.17857142857142855, -0.14285714285714293, 0.1428571428571428, -0.07142857142857144, -0.3571428571428571, 0.1666666666666667, -0.035714285714285726, -0.19444444444444456, -0.01984126984126987, -0.1785714285714286, -0.38095238095238104, -0.023809523809523805, 0.10714285714285708, 0.1706349206349206, -0.09920634920634919, -0.03571428571428574, 0.0952380952380952];
    // [1, 1, 4, 3]
    private static readonly double[] BilinearSizeAC = [-0.5, 0.14285714285714282, -0.2142857142857143, -0.023809523809523826, -0.047619047619047644, -0.40476190476190477, 0.11904761904761907, -0.07142857142857147, -0.261904761904762, -0.07142857142857145, 0.0714285714285714, 0.2142857142857143];
    // [1, 1, 5, 5]
    private static readonly double[] BicubicSize = [-0.6004391428571428, -0.237605428571428, 0.27303571428571416, 0.2723928571428568, -0.22157142857142859, -0.20037642857142857, -0.2801337142857142, 0.0739464285714285, 0.1425285714285713, -0.41565971428571463, 0.24900000000000017, -0.24496428571428583, -0.14285714285714288, -0.04075000000000009, -0.5347142857142861, 0.09276642857142853, 0.08842014285714242, -0.039035714285714306, -0.13290357142857118, -0.08096385714285757, -0.13072485714285734, 0.3529428571428572, 0.09200000000000001, -0.16894285714285703, 0.3147248571428575];
    // [1, 1, 5, 6]
    private static readonly double[] NearestScale17 = [-0.5, -0.5, -0.07142857142857145, -0.07142857142857145, 0.3571428571428571, 0.3571428571428571, -0.5, -0.5, -0.07142857142857145, -0.07142857142857145, 0.3571428571428571, 0.3571428571428571, 0.2142857142857143, 0.2142857142857143, -0.35714285714285715, -0.35714285714285715, 0.0714285714285714, 0.0714285714285714, 0.2142857142857143, 0.2142857142857143, -0.35714285714285715, -0.35714285714285715, 0.0714285714285714, 0.0714285714285714, -0.07142857142857145, -0.07142857142857145, 0.3571428571428571, 0.3571428571428571, -0.2142857142857143, -0.2142857142857143];
    // [1, 2, 3, 2]
    private static readonly double[] AffineGrid = [-0.4, -0.8, 0.2, -0.6000000000000001, 0.7999999999999999, -0.4000000000000001, -0.6, 0.3000000000000001, 0.0, 0.5, 0.6, 0.7];
    // [1, 2, 3, 2]
    private static readonly double[] AffineGridAC = [-0.6, -1.4500000000000002, 0.30000000000000004, -1.1500000000000001, 1.2000000000000002, -0.8500000000000001, -1.0, 0.75, -0.1, 1.05, 0.7999999999999999, 1.35];
    // [1, 2, 2, 3]
    private static readonly double[] GridBilinearZeros = [0.0, 0.16574952561669826, 0.08529335251270122, -0.048861480075901347, 0.060931780620676924, -0.2634724857685009, 0.0, -0.30483870967741933, -0.019683081349084905, -0.2646110056925996, -0.01406118014323314, 0.039222317438942306];
    // [1, 2, 2, 3]
    private static readonly double[] GridNearestBorder = [-0.5, 0.1470588235294118, 0.38235294117647056, -0.02941176470588236, 0.38235294117647056, -0.32352941176470584, 0.02941176470588236, -0.32352941176470584, -0.08823529411764708, -0.5, -0.08823529411764708, 0.20588235294117652];
    // [1, 2, 2, 3]
    private static readonly double[] GridBilinearReflectionAC = [-0.3169829222011385, 0.14354838709677417, 0.3343591234620801, -0.0118595825426945, 0.1805903776703188, -0.1672675521821632, 0.08323529411764705, -0.32703984819734344, -0.10332068311195441, -0.4163187855787476, -0.13975332068311203, -0.1709723327416294];
    // [2, 1, 2, 3]
    private static readonly double[] BceNone = [0.12692801104297252, 0.6865743331809244, 0.44699479049021373, 0.6190839678122044, 0.6631358143385921, 1.619527545209015, 0.8203020035744949, 1.1499723332448244, 0.8942528199342898, 0.7510479022506801, 1.2124905612187977, 1.062379405874829];
    private const double BceMean = 0.83772412401432, BceWeightedMean = 0.7424294866139953, BceWeightedBroadcastSum = 21.811171653171673;
    private const double BceLogitsMean = 0.83772412401432, BceLogitsWeightPosWeightMean = 1.5032714396265643, BceLogitsPosWeightSum = 9.940224754664587;
    private const double MseMean = 0.006184291898577614, MseSum = 0.037105751391465686, L1Mean = 0.06493506493506494, L1Sum = 0.3896103896103897, MseBroadcastMean = 0.16636363636363638;
    // [2, 2, 2]
    private static readonly double[] CeNone = [3.1042868254772897, 1.9488901246232926, 2.3017172782446735, 0.3699427562022398, 1.9488901246232926, 0.7227699098236209, 0.0, 2.3017172782446735];
    private const double CeMean = 1.8140306138912976, CeWeightedMean = 1.7508959158089126, CeWeightedSum = 15.758063242280214, CeSmoothMean = 1.6486431462012818, CeIgnore1Mean = 1.9031664744657366;
    private const double CeProbMean = 1.3343176505798717;
    private const double NllMean = 1.8140306138912976, NllWeightedMean = 1.7508959158089126;
}
