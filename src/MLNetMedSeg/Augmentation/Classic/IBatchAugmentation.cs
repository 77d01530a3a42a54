using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>
/// A batch-level augmentation the segmentation trainer applies on the fly: a new random draw on every call (every
/// batch of every epoch), all randomness from the given <see cref="Generator"/>.
/// </summary>
/// <remarks>
/// Inputs: images float32 [N,C,H,W] in [0,1]; masks either float32 [N,1,H,W] with values {0,1} (binary) or int64
/// [N,H,W] (class indices), on the same device as the images. Outputs are new tensors (the inputs are neither
/// modified nor returned) that join the caller's dispose scope, on the inputs' device, with the inputs' shapes and
/// dtypes. Wherever geometry changes (flips, elastic warps, CutMix boxes) the mask moves with the image; masks are
/// sampled with nearest neighbour and stay exactly binary / integer-valued.
/// </remarks>
public interface IBatchAugmentation
{
    /// <summary>Augments one batch; see the interface remarks for shapes, dtypes and ownership.</summary>
    (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator);

    /// <summary>Short name (the CLI's <c>--augment</c> value for the built-in kinds).</summary>
    string Name { get; }
}

/// <summary>Shared checks and random draws of the classic augmentations.</summary>
internal static class BatchAug
{
    /// <summary>Validates the batch contract; returns (N, H, W).</summary>
    public static (long n, long h, long w) Check(Tensor images, Tensor masks, Generator generator, string who)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(generator);
        var s = images.shape;
        if (s.Length != 4)
            throw new ArgumentException($"{who}: images must be [N,C,H,W], got [{string.Join(",", s)}]", nameof(images));
        if (images.dtype != ScalarType.Float32)
            throw new ArgumentException($"{who}: images must be float32, got {images.dtype}", nameof(images));
        var m = masks.shape;
        bool ok = masks.dtype switch
        {
            ScalarType.Float32 => m.Length == 4 && m[1] == 1 && m[0] == s[0] && m[2] == s[2] && m[3] == s[3],
            ScalarType.Int64 => m.Length == 3 && m[0] == s[0] && m[1] == s[2] && m[2] == s[3],
            _ => false,
        };
        if (!ok)
            throw new ArgumentException(
                $"{who}: masks must be float32 [N,1,H,W] or int64 [N,H,W] matching images [{string.Join(",", s)}], " +
                $"got {masks.dtype} [{string.Join(",", m)}]", nameof(masks));
        if (images.device.ToString() != masks.device.ToString())
            throw new ArgumentException($"{who}: images are on {images.device} but masks on {masks.device}", nameof(masks));
        return (s[0], s[2], s[3]);
    }

    /// <summary><paramref name="count"/> uniforms in [0,1) from the generator, read to the host.</summary>
    public static double[] Uniform(Generator g, long count)
    {
        if (count == 0) return [];
        using var t = SeededRandom.Rand([count], ScalarType.Float64, torch.CPU, g);
        using var c = t.cpu();
        return c.ToArray<double>();
    }

    /// <summary><paramref name="count"/> standard normals from the generator, read to the host.</summary>
    public static double[] Normal(Generator g, long count)
    {
        using var t = SeededRandom.Randn([count], ScalarType.Float64, torch.CPU, g);
        using var c = t.cpu();
        return c.ToArray<double>();
    }

    /// <summary>A random permutation of 0..n-1 from the generator, on the host.</summary>
    public static long[] Permutation(Generator g, long n)
    {
        using var t = SeededRandom.Randperm(n, torch.CPU, g);
        using var c = t.cpu();
        return c.ToArray<long>();
    }

    /// <summary>Integer uniform in [0, high) from one uniform draw.</summary>
    public static long Int(double u, long high) => Math.Min(high - 1, (long)Math.Floor(u * high));

    /// <summary>Gamma(shape, 1) by Marsaglia and Tsang (2000), with uniforms/normals drawn from the generator.</summary>
    public static double Gamma(double shape, Generator g)
    {
        if (shape < 1)
        {
            double boost = Math.Pow(Uniform(g, 1)[0], 1.0 / shape);
            return Gamma(shape + 1, g) * boost;
        }
        double d = shape - 1.0 / 3.0, c = 1.0 / Math.Sqrt(9 * d);
        while (true)
        {
            var z = Normal(g, 8);
            var u = Uniform(g, 8);
            for (int i = 0; i < 8; i++)
            {
                double v = 1 + c * z[i];
                if (v <= 0) continue;
                v = v * v * v;
                if (u[i] > 0 && Math.Log(u[i]) < 0.5 * z[i] * z[i] + d - d * v + d * Math.Log(v)) return d * v;
            }
        }
    }

    /// <summary>Beta(a, a); exactly one uniform when a = 1.</summary>
    public static double SymmetricBeta(double a, Generator g)
    {
        if (a == 1) return Uniform(g, 1)[0];
        double x = Gamma(a, g), y = Gamma(a, g);
        return x + y > 0 ? x / (x + y) : 0.5;
    }

    /// <summary>
    /// A bool [N,1,H,W] tensor true inside each sample's box [y0,y1) x [x0,x1) (empty boxes give all false).
    /// </summary>
    public static Tensor BoxMask(long n, long h, long w, long[] y0, long[] y1, long[] x0, long[] x1, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var rows = torch.arange(S(0), S(h), S(1), ScalarType.Int64, device).view(1, 1, h, 1);
        var cols = torch.arange(S(0), S(w), S(1), ScalarType.Int64, device).view(1, 1, 1, w);
        Tensor V(long[] a) => TensorExtensions.FromArray(a, [n, 1, 1, 1], device);
        var box = (rows >= V(y0)) & (rows < V(y1)) & (cols >= V(x0)) & (cols < V(x1));
        return box.MoveToOuterDisposeScope();
    }

    /// <summary>A per-sample bool [N,1,1,1] tensor.</summary>
    public static Tensor Flags(bool[] flags, Device device) => TensorExtensions.FromArray(flags, [flags.Length, 1, 1, 1], device);

    /// <summary>Reshapes a [N,1,...] per-sample/box tensor to the mask's rank (drops dim 1 for int64 [N,H,W] masks).</summary>
    public static Tensor ForMask(Tensor t, Tensor masks) => masks.dim() == 3 ? t.squeeze(1) : t.alias();

    /// <summary>Moves both results to the caller's scope.</summary>
    public static (Tensor, Tensor) Out(Tensor images, Tensor masks)
        => (images.MoveToOuterDisposeScope(), masks.MoveToOuterDisposeScope());
}
