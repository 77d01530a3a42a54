namespace MLNetMedSeg.Tests;

/// <summary>Test helpers over TorchSharp tensors.</summary>
internal static class TensorTestExtensions
{
    /// <summary>True when both tensors have the same shape and the same elements (torch.equal).</summary>
    public static bool IsEqual(this torch.Tensor a, torch.Tensor b) => a.shape.SequenceEqual(b.shape) && (a.numel() == 0 || a.eq(b).all().ToBoolean());
}
