namespace MLNetMedSeg.Torch.Modules;

// Activation layers. The in-place variants overwrite their input and return a new handle to it (so that a
// container disposing intermediate results never disposes the caller's tensor).

/// <summary>max(0, x), as torch.nn.ReLU.</summary>
public sealed class ReLU(bool inplace = false) : torch.nn.Module<Tensor, Tensor>(nameof(ReLU))
{
    public bool inplace { get; } = inplace;

    public override Tensor forward(Tensor input) => inplace ? input.relu_().alias() : input.relu();
}

/// <summary>x for x &gt;= 0, negative_slope * x otherwise, as torch.nn.LeakyReLU (default slope 0.01).</summary>
public sealed class LeakyReLU(double negative_slope = 0.01, bool inplace = false) : torch.nn.Module<Tensor, Tensor>(nameof(LeakyReLU))
{
    public double negative_slope { get; } = negative_slope;
    public bool inplace { get; } = inplace;

    public override Tensor forward(Tensor input) => inplace ? input.leaky_relu_(negative_slope).alias() : input.leaky_relu(negative_slope);
}

/// <summary>x * sigmoid(x), as torch.nn.SiLU.</summary>
public sealed class SiLU(bool inplace = false) : torch.nn.Module<Tensor, Tensor>(nameof(SiLU))
{
    public bool inplace { get; } = inplace;

    public override Tensor forward(Tensor input) => inplace ? input.silu_().alias() : input.silu();
}

/// <summary>GELU, as torch.nn.GELU; approximate "none" (exact) or "tanh".</summary>
public sealed class GELU : torch.nn.Module<Tensor, Tensor>
{
    public GELU(string approximate = "none") : base(nameof(GELU))
    {
        if (approximate is not ("none" or "tanh"))
            throw new ArgumentException($"GELU: approximate must be \"none\" or \"tanh\", got \"{approximate}\"", nameof(approximate));
        this.approximate = approximate;
    }

    public string approximate { get; }

    public override Tensor forward(Tensor input) => input.gelu(approximate);
}

/// <summary>1 / (1 + exp(-x)), as torch.nn.Sigmoid.</summary>
public sealed class Sigmoid() : torch.nn.Module<Tensor, Tensor>(nameof(Sigmoid))
{
    public override Tensor forward(Tensor input) => input.sigmoid();
}

/// <summary>Hyperbolic tangent, as torch.nn.Tanh.</summary>
public sealed class Tanh() : torch.nn.Module<Tensor, Tensor>(nameof(Tanh))
{
    public override Tensor forward(Tensor input) => input.tanh();
}

/// <summary>Softmax along <see cref="dim"/>, as torch.nn.Softmax.</summary>
public sealed class Softmax(long dim) : torch.nn.Module<Tensor, Tensor>(nameof(Softmax))
{
    public long dim { get; } = dim;

    public override Tensor forward(Tensor input) => input.softmax(dim);
}

/// <summary>log(softmax(x)) along <see cref="dim"/>, as torch.nn.LogSoftmax.</summary>
public sealed class LogSoftmax(long dim) : torch.nn.Module<Tensor, Tensor>(nameof(LogSoftmax))
{
    public long dim { get; } = dim;

    public override Tensor forward(Tensor input) => input.log_softmax(dim);
}
