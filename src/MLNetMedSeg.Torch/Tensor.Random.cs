using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Random sampling methods. Every method takes an optional explicit Generator; null draws from the
// device's global generator (seeded by torch.manual_seed).
public partial class Tensor
{
    private static GeneratorHandle Gen(Generator? g) => g?.Handle ?? GeneratorHandle.Null;

    /// <summary>0/1 draws (same dtype and shape as this) with success probabilities given by this tensor's elements, which must lie in [0, 1].</summary>
    public Tensor bernoulli(Generator? generator = null) => Wrap(LibTorch.mt_bernoulli(Handle, Gen(generator), out var r), r);
    /// <summary>0/1 draws with success probability <paramref name="p"/>, shaped and typed like this tensor (whose values are ignored).</summary>
    public Tensor bernoulli(double p, Generator? generator = null) => Wrap(LibTorch.mt_bernoulli_p(Handle, p, Gen(generator), out var r), r);
    /// <summary>Fills this tensor in place with 0/1 draws of success probability <paramref name="p"/>; returns this.</summary>
    public Tensor bernoulli_(double p = 0.5, Generator? generator = null)
    {
        LibTorch.Check(LibTorch.mt_bernoulli_p_(Handle, p, Gen(generator)));
        return this;
    }
    /// <summary>Fills this tensor in place with 0/1 draws whose probabilities are the (broadcast) elements of <paramref name="p"/>; returns this.</summary>
    public Tensor bernoulli_(Tensor p, Generator? generator = null)
    {
        LibTorch.Check(LibTorch.mt_bernoulli_tensor_(Handle, p.Handle, Gen(generator)));
        return this;
    }

    /// <summary>
    /// <paramref name="num_samples"/> category indices (int64) drawn per row of this 1-D or 2-D tensor of non-negative
    /// weights (they need not sum to 1). Without replacement num_samples must not exceed the number of categories.
    /// </summary>
    public Tensor multinomial(long num_samples, bool replacement = false, Generator? generator = null)
        => Wrap(LibTorch.mt_multinomial(Handle, num_samples, replacement, Gen(generator), out var r), r);

    /// <summary>Fills this tensor in place with integers drawn uniformly from [<paramref name="from"/>, <paramref name="to"/>); returns this.</summary>
    public Tensor random_(long from, long to, Generator? generator = null)
    {
        LibTorch.Check(LibTorch.mt_random_(Handle, from, true, to, Gen(generator)));
        return this;
    }
    /// <summary>Fills this tensor in place with integers drawn uniformly from [0, <paramref name="to"/>); returns this.</summary>
    public Tensor random_(long to, Generator? generator = null) => random_(0, to, generator);
}
