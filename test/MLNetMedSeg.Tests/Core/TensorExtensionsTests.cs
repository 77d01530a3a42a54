using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary><see cref="TensorExtensions"/>: array round trips and element sizes.</summary>
[TestClass]
public sealed class TensorExtensionsTests
{
    private static void RoundTrip<T>(T[] values) where T : unmanaged
    {
        using var t = TensorExtensions.FromArray<T>(values, [values.Length]);
        Assert.AreEqual(TensorExtensions.ScalarTypeOf<T>(), t.dtype, typeof(T).Name);
        CollectionAssert.AreEqual(values, t.ToArray<T>(), typeof(T).Name);
        Assert.AreEqual(TensorExtensions.ElementSize(t.dtype), t.ElementSize, typeof(T).Name);
    }

    [TestMethod]
    public void EverySupportedElementTypeRoundTrips()
    {
        RoundTrip(new[] { 1.5f, float.NaN, -0f, float.MaxValue });
        RoundTrip(new[] { Math.PI, double.NegativeInfinity });
        RoundTrip(new[] { long.MinValue, 0, long.MaxValue });
        RoundTrip(new[] { int.MinValue, 7 });
        RoundTrip(new short[] { -3, 300 });
        RoundTrip(new byte[] { 0, 255 });
        RoundTrip(new sbyte[] { -128, 127 });
        RoundTrip(new[] { true, false, true });
        RoundTrip(new[] { (Half)1.5, Half.MaxValue });
        Assert.ThrowsException<NotSupportedException>(() => TensorExtensions.ScalarTypeOf<decimal>());
    }

    [TestMethod]
    public void ShapesLayoutsAndErrors()
    {
        using var scope = NewDisposeScope();
        var t = TensorExtensions.FromArray<float>(new float[] { 0, 1, 2, 3, 4, 5 }, [2, 3]);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, t.shape);
        CollectionAssert.AreEqual(new float[] { 0, 3, 1, 4, 2, 5 }, t.t().ToArray<float>(), "a transposed view is read in row-major order");
        Assert.AreEqual(0, TensorExtensions.FromArray<float>(ReadOnlySpan<float>.Empty, [0, 4]).ToArray<float>().Length);
        var e = Assert.ThrowsException<ArgumentException>(() => TensorExtensions.FromArray<float>(new float[5], [2, 3]));
        StringAssert.Contains(e.Message, "5 values do not fill a tensor of shape [2, 3]");
        var wrong = Assert.ThrowsException<InvalidOperationException>(() => t.ToArray<double>());
        StringAssert.Contains(wrong.Message, "holds Float32, not Float64");
        var p = tensor(new float[] { 1, 2 }, requires_grad: true);
        CollectionAssert.AreEqual(new float[] { 2, 4 }, (p * S(2)).ToArray<float>(), "a tensor in a graph");
        Assert.AreEqual(2, TensorExtensions.ElementSize(ScalarType.BFloat16));
        Assert.AreEqual(16, TensorExtensions.ElementSize(ScalarType.ComplexFloat64));
    }
}
