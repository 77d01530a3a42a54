using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// In-place random initialisation of a tensor's values.
public partial class Tensor
{
    /// <summary>
    /// Fills this tensor in place with samples from U(from, to) (default [0, 1)); returns this. When
    /// <paramref name="generator"/> is null, the generator of an enclosing <see cref="torch.nn.init.UseGenerator"/> scope is
    /// used, else the global one. Like PyTorch, this is an autograd-recorded in-place op: on a leaf that requires grad,
    /// call it under <see cref="torch.no_grad"/> (or use <see cref="torch.nn.init.uniform_"/>).
    /// </summary>
    public Tensor uniform_(double from = 0, double to = 1, Generator? generator = null)
    {
        var g = generator ?? torch.nn.init.CurrentGenerator;
        LibTorch.Check(LibTorch.mt_nn_uniform_(Handle, from, to, g?.Handle ?? GeneratorHandle.Null, false));
        return this;
    }

    /// <summary>
    /// Fills this tensor in place with samples from N(mean, std^2) (default standard normal); returns this. Generator
    /// resolution as in <see cref="uniform_"/>.
    /// </summary>
    public Tensor normal_(double mean = 0, double std = 1, Generator? generator = null)
    {
        var g = generator ?? torch.nn.init.CurrentGenerator;
        LibTorch.Check(LibTorch.mt_nn_normal_(Handle, mean, std, g?.Handle ?? GeneratorHandle.Null, false));
        return this;
    }
}
