using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>Utilities on parameters (gradient clipping).</summary>
        public static class utils
        {
            /// <summary>
            /// Scales the gradients of <paramref name="parameters"/> in place so that their joint norm (all gradients
            /// taken as one vector) is at most <paramref name="max_norm"/>, as torch.nn.utils.clip_grad_norm_: every
            /// gradient is multiplied by min(1, max_norm / (total_norm + 1e-6)). Parameters without a gradient are
            /// skipped. <paramref name="norm_type"/> is the p of the p-norm (default 2; <see cref="double.PositiveInfinity"/>
            /// for the largest absolute value). Returns the total norm before clipping (0 when no parameter has a gradient).
            /// </summary>
            public static unsafe double clip_grad_norm_(IEnumerable<Parameter> parameters, double max_norm, double norm_type = 2.0)
            {
                ArgumentNullException.ThrowIfNull(parameters);
                var list = parameters.Cast<Tensor>().ToList();
                using var handles = new HandleArray(list);
                double total;
                fixed (IntPtr* p = handles.Pointers)
                    LibTorch.Check(LibTorch.mt_clip_grad_norm_(p, handles.Length, max_norm, norm_type, out total));
                return total;
            }
        }
    }
}
