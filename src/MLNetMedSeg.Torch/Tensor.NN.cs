using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Activation functions and matrix products as tensor methods (see also torch.nn.functional).
public partial class Tensor
{
    /// <summary>max(0, x).</summary>
    public Tensor relu() => Wrap(LibTorch.mt_nn_relu(Handle, out var r), r);

    /// <summary>max(0, x) in place; returns this.</summary>
    public Tensor relu_() { LibTorch.Check(LibTorch.mt_nn_relu_(Handle)); return this; }

    /// <summary>x for x &gt;= 0, negative_slope * x otherwise (default slope 0.01).</summary>
    public Tensor leaky_relu(double negative_slope = 0.01) => Wrap(LibTorch.mt_nn_leaky_relu(Handle, negative_slope, out var r), r);

    /// <summary>Leaky ReLU in place; returns this.</summary>
    public Tensor leaky_relu_(double negative_slope = 0.01) { LibTorch.Check(LibTorch.mt_nn_leaky_relu_(Handle, negative_slope)); return this; }

    /// <summary>SiLU / swish: x * sigmoid(x).</summary>
    public Tensor silu() => Wrap(LibTorch.mt_nn_silu(Handle, out var r), r);

    /// <summary>SiLU in place; returns this.</summary>
    public Tensor silu_() { LibTorch.Check(LibTorch.mt_nn_silu_(Handle)); return this; }

    /// <summary>GELU: x * Phi(x) with the exact (erf) form, or its tanh approximation when <paramref name="approximate"/> is "tanh".</summary>
    public Tensor gelu(string approximate = "none")
    {
        int a = approximate switch
        {
            "none" => 0,
            "tanh" => 1,
            _ => throw new ArgumentException($"gelu: approximate must be \"none\" or \"tanh\", got \"{approximate}\"", nameof(approximate)),
        };
        return Wrap(LibTorch.mt_nn_gelu(Handle, a, out var r), r);
    }

    /// <summary>1 / (1 + exp(-x)).</summary>
    public Tensor sigmoid() => Wrap(LibTorch.mt_nn_sigmoid(Handle, out var r), r);

    /// <summary>Sigmoid in place; returns this.</summary>
    public Tensor sigmoid_() { LibTorch.Check(LibTorch.mt_nn_sigmoid_(Handle)); return this; }

    /// <summary>Hyperbolic tangent.</summary>
    public Tensor tanh() => Wrap(LibTorch.mt_nn_tanh(Handle, out var r), r);

    /// <summary>Hyperbolic tangent in place; returns this.</summary>
    public Tensor tanh_() { LibTorch.Check(LibTorch.mt_nn_tanh_(Handle)); return this; }

    /// <summary>Softmax along <paramref name="dim"/> (negative counts from the end), optionally computed in <paramref name="dtype"/>.</summary>
    public Tensor softmax(long dim, ScalarType? dtype = null)
        => Wrap(LibTorch.mt_nn_softmax(Handle, dim, dtype.HasValue ? (int)dtype.Value : -1, out var r), r);

    /// <summary>log(softmax(x)) along <paramref name="dim"/>, computed stably.</summary>
    public Tensor log_softmax(long dim, ScalarType? dtype = null)
        => Wrap(LibTorch.mt_nn_log_softmax(Handle, dim, dtype.HasValue ? (int)dtype.Value : -1, out var r), r);

    /// <summary>log(1 + exp(beta * x)) / beta, and x itself where beta * x &gt; threshold.</summary>
    public Tensor softplus(double beta = 1, double threshold = 20) => Wrap(LibTorch.mt_nn_softplus(Handle, beta, threshold, out var r), r);

    /// <summary>Clamps to [min_val, max_val] (defaults -1, 1).</summary>
    public Tensor hardtanh(double min_val = -1, double max_val = 1) => Wrap(LibTorch.mt_nn_hardtanh(Handle, min_val, max_val, out var r), r);

    /// <summary>Hardtanh in place; returns this.</summary>
    public Tensor hardtanh_(double min_val = -1, double max_val = 1) { LibTorch.Check(LibTorch.mt_nn_hardtanh_(Handle, min_val, max_val)); return this; }

    /// <summary>
    /// Matrix product as torch.matmul: 1-D x 1-D is a dot product, 2-D x 2-D a matrix product, and batched operands
    /// (&gt; 2 dimensions) are broadcast over their leading dimensions, e.g. (B, h, n, d) x (B, h, d, m) -> (B, h, n, m).
    /// </summary>
    public Tensor matmul(Tensor other) => Wrap(LibTorch.mt_nn_matmul(Handle, other.Handle, out var r), r);

    /// <summary>Batched matrix product: (B, n, m) x (B, m, p) -> (B, n, p); no broadcasting.</summary>
    public Tensor bmm(Tensor mat2) => Wrap(LibTorch.mt_nn_bmm(Handle, mat2.Handle, out var r), r);
}
