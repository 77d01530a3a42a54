using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>
/// <c>grid_sample</c> behind a check of its modes. TorchSharp 0.107's <see cref="GridSampleMode"/> has only Nearest (0)
/// and Bilinear (2), and every other value (PyTorch's bicubic, <c>(GridSampleMode)1</c> or <c>3</c> included) silently
/// samples bilinearly. Every grid_sample of the library goes through <see cref="GridSample"/>, which refuses such a
/// value instead of returning a differently interpolated result.
/// </summary>
public static class Sampling
{
    /// <summary>
    /// <c>torch.nn.functional.grid_sample</c> of <paramref name="input"/> at <paramref name="grid"/> (x, y in [−1, 1]).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="mode"/> is not Nearest or Bilinear, or <paramref name="padding"/> is not a defined padding mode.</exception>
    public static Tensor GridSample(Tensor input, Tensor grid, GridSampleMode mode, GridSamplePaddingMode padding, bool alignCorners)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(grid);
        if (mode is not (GridSampleMode.Nearest or GridSampleMode.Bilinear))
            throw new ArgumentException(
                $"grid_sample mode {(int)mode} is not supported: TorchSharp samples only Nearest and Bilinear, and would silently " +
                "use bilinear for any other mode (bicubic included)", nameof(mode));
        if (!Enum.IsDefined(padding))
            throw new ArgumentException($"grid_sample padding mode {(int)padding} is not one of Zeros, Reflection, Border", nameof(padding));
        return nn.functional.grid_sample(input, grid, mode, padding, alignCorners);
    }
}
