namespace MLNetMedSeg.Torch.Modules;

/// <summary>
/// Dropout, as torch.nn.Dropout: in training mode zeroes each element with probability p and scales the others by
/// 1/(1-p); in evaluation mode passes the input through. Masks are drawn from <see cref="generator"/> when set (a seeded
/// generator makes them reproducible), else from the global generator.
/// </summary>
public sealed class Dropout : torch.nn.Module<Tensor, Tensor>
{
    public Dropout(double p = 0.5, Generator? generator = null) : base(nameof(Dropout))
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability has to be between 0 and 1");
        this.p = p;
        this.generator = generator;
    }

    public double p { get; }

    /// <summary>The mask generator (not owned: the caller disposes it), or null for the global one.</summary>
    public Generator? generator { get; set; }

    public override Tensor forward(Tensor input) => torch.nn.functional.dropout(input, p, training, generator);
}

/// <summary>
/// Channel dropout, as torch.nn.Dropout2d: in training mode zeroes whole channels of (N, C, H, W) with probability p and
/// scales the others by 1/(1-p); identity in evaluation mode. Masks come from <see cref="generator"/> when set.
/// </summary>
public sealed class Dropout2d : torch.nn.Module<Tensor, Tensor>
{
    public Dropout2d(double p = 0.5, Generator? generator = null) : base(nameof(Dropout2d))
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability has to be between 0 and 1");
        this.p = p;
        this.generator = generator;
    }

    public double p { get; }

    /// <summary>The mask generator (not owned: the caller disposes it), or null for the global one.</summary>
    public Generator? generator { get; set; }

    public override Tensor forward(Tensor input) => torch.nn.functional.dropout2d(input, p, training, generator);
}
