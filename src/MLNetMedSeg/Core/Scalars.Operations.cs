using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>
/// The TorchSharp operations that make a temporary Scalar <em>inside TorchSharp</em>, written with kept scalars.
/// </summary>
/// <remarks>
/// <para>
/// <c>S(v)</c> covers the numbers our code passes; some TorchSharp methods make a Scalar of their own, which nothing
/// keeps alive while libtorch reads it, exactly like the implicit conversion (see <see cref="Scalars"/>):
/// <c>a + b</c> and <c>a.add(b)</c> call <c>add(b, 1)</c>, <c>t + S(v)</c> calls <c>add(S(v), 1)</c>,
/// <c>S(v) - t</c> calls <c>t.negative().add(S(v), 1)</c>, <c>square()</c> calls <c>pow(2)</c>, <c>arange(stop)</c> calls
/// <c>arange(0, stop, 1)</c>, <c>functional.leaky_relu(x, 0.2)</c> and <c>nn.LeakyReLU</c> call <c>leaky_relu(0.2)</c>,
/// <c>softplus</c> converts β and the threshold, and <c>t.ToDouble()</c> reads a Scalar made by <c>t.ToScalar()</c>
/// and never disposed. A loop of <c>a + b</c> on one thread with garbage collections on another failed about once per
/// million additions (<c>Expected false to be true ... toDouble</c>); <c>a.add(b, S(1))</c> never did.
/// </para>
/// <para>
/// The helpers here make the same TorchSharp and libtorch calls with the Scalar kept alive, so their results are the
/// originals' bit for bit (<c>ScalarLifetimeTests</c> checks each one). Where no helper is needed the explicit
/// overload is written out: <c>x.pow(S(2))</c> for <c>x.square()</c>, <c>arange(S(0), S(n), S(1), …)</c> for
/// <c>arange(S(n), …)</c>, <c>x.leaky_relu(S(0.2))</c> for <c>functional.leaky_relu(x, 0.2)</c>,
/// <c>t.add_(u, S(1))</c> for <c>t.add_(u)</c>. <c>ScalarLifetimeTests</c> computes from TorchSharp.dll's IL which
/// TorchSharp methods make such temporaries and fails on any call our assemblies make to one.
/// </para>
/// </remarks>
public static partial class Scalars
{
    /// <summary>The alpha of 1 that <c>add(Tensor)</c> and <c>add(Scalar)</c> pass implicitly (an int32 Scalar, as there), kept for the process's life.</summary>
    private static readonly Scalar One = 1.ToScalar();

    /// <summary><c>left + right</c> (<c>left.add(right)</c>) with its alpha of 1 kept alive: <c>left.add(right, 1)</c>.</summary>
    public static Tensor Plus(this Tensor left, Tensor right) => left.add(right, One);

    /// <summary><c>left + S(v)</c> (<c>left.add(S(v))</c>) with its alpha of 1 kept alive: <c>left.add(S(v), 1)</c>.</summary>
    public static Tensor Plus(this Tensor left, Scalar right) => left.add(right, One);

    /// <summary><c>S(v) - right</c> with its alpha kept alive: TorchSharp's operator is <c>right.negative().add(S(v), 1)</c>.</summary>
    public static Tensor Minus(this Scalar left, Tensor right) => right.negative().add(left, One);

    /// <summary>
    /// <c>nn.functional.softplus(x, beta, threshold)</c> (also <c>x.softplus(beta, threshold)</c>) with β and the
    /// threshold as kept Scalars. TorchSharp 0.107 has no public Scalar overload: this calls the private one its double
    /// overload forwards to (the same native call), and that double overload only where a TorchSharp release lacks it.
    /// </summary>
    public static Tensor Softplus(Tensor x, double beta = 1, double threshold = 20) =>
        SoftplusKernel.WithScalars is { } kernel ? kernel(x, S(beta), S(threshold)) : x.softplus(beta, threshold);

    /// <summary>Whether <see cref="Softplus"/> found TorchSharp's Scalar overload (else it falls back to the exposed double one).</summary>
    internal static bool SoftplusKeepsItsScalars => SoftplusKernel.WithScalars is not null;

    /// <summary>
    /// An <c>nn.LeakyReLU(negativeSlope)</c> whose forward passes its slope as a kept Scalar (TorchSharp's module
    /// converts its double slope on every call). Parameter-less, named <c>LeakyReLU</c>: state dicts are unchanged.
    /// </summary>
    public static nn.Module<Tensor, Tensor> LeakyReLUModule(double negativeSlope) => new KeptLeakyReLU(negativeSlope);

    /// <summary><c>t.ToDouble()</c> with the Scalar TorchSharp reads the value through disposed here, after the read (and <paramref name="t"/> kept alive until then).</summary>
    public static double DoubleValue(this Tensor t)
    {
        using var value = t.ToScalar();
        GC.KeepAlive(t);   // t is often a temporary (x.sum().DoubleValue()): its finalizer must not free it during the read
        return value.ToDouble();
    }

    /// <summary><c>t.ToSingle()</c> with the Scalar TorchSharp reads the value through disposed here, after the read.</summary>
    public static float SingleValue(this Tensor t)
    {
        using var value = t.ToScalar();
        GC.KeepAlive(t);   // t is often a temporary (x.sum().DoubleValue()): its finalizer must not free it during the read
        return value.ToSingle();
    }

    /// <summary><c>t.ToInt64()</c> with the Scalar TorchSharp reads the value through disposed here, after the read.</summary>
    public static long Int64Value(this Tensor t)
    {
        using var value = t.ToScalar();
        GC.KeepAlive(t);   // t is often a temporary (x.sum().DoubleValue()): its finalizer must not free it during the read
        return value.ToInt64();
    }

    /// <summary><c>t.ToBoolean()</c> with the Scalar TorchSharp reads the value through disposed here, after the read.</summary>
    public static bool BooleanValue(this Tensor t)
    {
        using var value = t.ToScalar();
        GC.KeepAlive(t);   // t is often a temporary (x.sum().DoubleValue()): its finalizer must not free it during the read
        return value.ToBoolean();
    }

    private static class SoftplusKernel
    {
        /// <summary>TorchSharp's <c>Tensor.softplus1(Scalar beta, Scalar threshold)</c> (private in 0.107), or null.</summary>
        public static readonly Func<Tensor, Scalar, Scalar, Tensor>? WithScalars = Find();

        private static Func<Tensor, Scalar, Scalar, Tensor>? Find()
        {
            var method = typeof(Tensor).GetMethod("softplus1", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic,
                [typeof(Scalar), typeof(Scalar)]);
            return method?.ReturnType == typeof(Tensor) ? method.CreateDelegate<Func<Tensor, Scalar, Scalar, Tensor>>() : null;
        }
    }

    private sealed class KeptLeakyReLU(double negativeSlope) : ParameterLessModule<Tensor, Tensor>("LeakyReLU")
    {
        public override Tensor forward(Tensor input) => input.leaky_relu(S(negativeSlope));
    }
}
