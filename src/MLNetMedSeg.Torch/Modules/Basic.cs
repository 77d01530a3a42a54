using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch.Modules;

/// <summary>Flattens dimensions start_dim..end_dim into one, as torch.nn.Flatten (defaults 1 and -1: (N, ...) -> (N, rest)).</summary>
public sealed class Flatten : torch.nn.Module<Tensor, Tensor>
{
    public Flatten(long start_dim = 1, long end_dim = -1) : base(nameof(Flatten))
    {
        this.start_dim = start_dim;
        this.end_dim = end_dim;
    }

    public long start_dim { get; }
    public long end_dim { get; }

    public override Tensor forward(Tensor input)
    {
        LibTorch.Check(LibTorch.mt_nn_flatten(input.Handle, start_dim, end_dim, out IntPtr r));
        return new Tensor(r);
    }
}

/// <summary>Returns its input (a new handle to the same tensor), as torch.nn.Identity.</summary>
public sealed class Identity : torch.nn.Module<Tensor, Tensor>
{
    public Identity() : base(nameof(Identity)) { }

    public override Tensor forward(Tensor input) => input.alias();
}
