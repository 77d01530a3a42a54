using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

/// <summary>How <see cref="torch.nn.functional.pad"/> fills the border (values as in TorchSharp's PaddingModes).</summary>
public enum PaddingModes
{
    /// <summary>Pads with zeros (constant padding with value 0).</summary>
    Zeros = 0,
    /// <summary>Mirrors the input without repeating the edge: [1,2,3] padded by 2 on the left gives [3,2,1,2,3].</summary>
    Reflect = 1,
    /// <summary>Repeats the edge value: [1,2,3] padded by 2 on the left gives [1,1,1,2,3].</summary>
    Replicate = 2,
    /// <summary>Wraps around: [1,2,3] padded by 2 on the left gives [2,3,1,2,3].</summary>
    Circular = 3,
    /// <summary>Pads with a constant value.</summary>
    Constant = 4,
}

public static partial class torch
{
    public static partial class nn
    {
        public static partial class functional
        {
            /// <summary>
            /// Pads <paramref name="input"/>. <paramref name="pad"/> lists (before, after) pairs starting from the last
            /// dimension: [left, right] pads the last dim, [left, right, top, bottom] the last two, and so on.
            /// Constant padding works on any dimensions and accepts negative amounts (cropping); reflect, replicate and
            /// circular pad the trailing 1-3 spatial dimensions of a batched (N, C, ...) or unbatched (C, ...) input.
            /// </summary>
            /// <param name="input">The tensor to pad.</param>
            /// <param name="pad">Padding amounts, an even count, at most 2 * dim.</param>
            /// <param name="mode">Constant (default), Zeros, Reflect, Replicate or Circular.</param>
            /// <param name="value">The fill value for <see cref="PaddingModes.Constant"/> (default 0).</param>
            public static Tensor pad(Tensor input, long[] pad, PaddingModes mode = PaddingModes.Constant, double value = 0)
            {
                ArgumentNullException.ThrowIfNull(pad);
                int m = mode switch
                {
                    PaddingModes.Constant => 0,
                    PaddingModes.Zeros => 0,
                    PaddingModes.Reflect => 1,
                    PaddingModes.Replicate => 2,
                    PaddingModes.Circular => 3,
                    _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown padding mode"),
                };
                if (mode == PaddingModes.Zeros) value = 0;
                return Tensor.Wrap(LibTorch.mt_pad(input.Handle, pad, pad.Length, m, value, out var r), r);
            }

            /// <summary>
            /// One-hot encoding of int64 class indices: the result has shape input.shape + [num_classes] (int64).
            /// With num_classes = -1 it is the largest index + 1.
            /// </summary>
            public static Tensor one_hot(Tensor tensor, long num_classes = -1)
                => Tensor.Wrap(LibTorch.mt_one_hot(tensor.Handle, num_classes, out var r), r);
        }
    }
}
