using TorchSharp;

namespace MLNetMedSeg.Core;

/// <summary>
/// Number operands for TorchSharp calls: <c>x * S(0.5)</c>, <c>S(1) - a</c>, <c>t.clamp(S(0), S(1))</c>
/// (with <c>using static MLNetMedSeg.Core.Scalars;</c>). Every number handed to TorchSharp as a <see cref="Scalar"/>
/// must go through <c>S(...)</c> (or an explicit <c>ToScalar()</c> kept alive by <c>using</c>); never through
/// TorchSharp's implicit conversion or its <c>Tensor</c> operators that take a number.
/// </summary>
/// <remarks>
/// <para>
/// Why: TorchSharp 0.107's <see cref="Scalar"/> frees its native <c>at::Scalar</c> in a finalizer. The implicit
/// conversion (<c>t.mul(0.5)</c>, <c>t.clamp(0, 1)</c>, <c>t.pow(2)</c>) and every <c>Tensor</c> operator with a
/// number operand (<c>t * 255</c>, <c>1 - t</c>, <c>x / 2.0</c>, implemented as <c>left.mul(right)</c> with an implicit
/// Scalar) make a temporary Scalar that nothing references once its handle has been read, that is <em>during</em> the
/// native call. A garbage collection started by another thread can then finalize it and free the native scalar while
/// libtorch is still reading it: a use-after-free, seen as <c>ExternalException: Unknown scalar type</c>, as
/// <c>Expected false to be true ... toDouble</c>, or silently as a wrong value when the freed memory has been reused.
/// TorchSharp PR #1434 (unmerged) fixes it upstream; until a release has it, our code keeps its scalars alive itself.
/// </para>
/// <para>
/// How: <c>S(v)</c> returns <c>v.ToScalar()</c> (what the implicit conversion calls, so the scalar's type, the result's
/// dtype and its values are exactly the implicit conversion's) and keeps it referenced in a per-thread ring of
/// <see cref="RingSize"/> entries. Making a Scalar disposes the one it evicts from the ring, on the creating thread:
/// the native scalar is freed deterministically and never by the finalizer.
/// </para>
/// <para>
/// Rule: an <c>S(...)</c> value is for immediate use in the expression that makes it. Its consuming native call has
/// returned long before <see cref="RingSize"/> more scalars are made on the same thread, after which it is disposed.
/// A Scalar kept across many operations (a field, a module, a loop's invariant) must be made with
/// <c>using var s = v.ToScalar();</c> (or owned and disposed by its holder) instead.
/// </para>
/// <para>
/// TorchSharp's own methods make such temporaries too (<c>a + b</c> and <c>add</c> pass an implicit alpha of 1,
/// <c>square()</c> calls <c>pow(2)</c>, <c>t.ToDouble()</c> reads through an undisposed Scalar): the kept-Scalar forms
/// that replace them (<c>a.Plus(b)</c>, <c>x.pow(S(2))</c>, <c>t.DoubleValue()</c>, …) are in Scalars.Operations.cs.
/// </para>
/// <para>
/// <c>ScalarLifetimeTests</c> scans the IL of the shipped assemblies and fails on any implicit number→Scalar
/// conversion, any <c>Tensor</c> operator with a number operand, and any call of a TorchSharp method that makes a
/// temporary Scalar inside itself (found in TorchSharp.dll's IL when the tests run). Training included: TorchSharp's
/// <c>BatchNorm2d</c> (training-mode <c>num_batches_tracked.add_(1)</c>) and the <c>step</c> of Adam, AdamW and RMSProp
/// (<c>exp_avg.mul_(beta1).add_(grad, alpha: 1 - beta1)</c>) make such temporaries, so the library uses
/// <see cref="Layers.BatchNorm2d"/> and <see cref="Optimizers"/> instead (TorchSharp's classes with kept Scalars, same
/// state formats, bit-identical numbers). No call of ours is allowlisted for them; what remains exposed is TorchSharp's
/// own internals that our code does not call, and native code, outside our reach.
/// </para>
/// </remarks>
public static partial class Scalars
{
    /// <summary>How many scalars each thread keeps alive before disposing the oldest.</summary>
    public const int RingSize = 1024;

    [ThreadStatic] private static Scalar?[]? ring;
    [ThreadStatic] private static int next;

    /// <summary>A float64 scalar (as <c>Scalar</c>'s implicit conversion from <see cref="double"/>), kept alive for immediate use.</summary>
    public static Scalar S(double value) => Keep(value.ToScalar());

    /// <summary>A float32 scalar (as <c>Scalar</c>'s implicit conversion from <see cref="float"/>), kept alive for immediate use.</summary>
    public static Scalar S(float value) => Keep(value.ToScalar());

    /// <summary>An int32 scalar (as <c>Scalar</c>'s implicit conversion from <see cref="int"/>), kept alive for immediate use.</summary>
    public static Scalar S(int value) => Keep(value.ToScalar());

    /// <summary>An int64 scalar (as <c>Scalar</c>'s implicit conversion from <see cref="long"/>), kept alive for immediate use.</summary>
    public static Scalar S(long value) => Keep(value.ToScalar());

    /// <summary>A bool scalar (as <c>Scalar</c>'s implicit conversion from <see cref="bool"/>), kept alive for immediate use.</summary>
    public static Scalar S(bool value) => Keep(value.ToScalar());

    private static Scalar Keep(Scalar scalar)
    {
        var entries = ring ??= new Scalar?[RingSize];
        int i = next;
        entries[i]?.Dispose();
        entries[i] = scalar;
        next = i + 1 == RingSize ? 0 : i + 1;
        return scalar;
    }
}
