namespace MLNetMedSeg.Torch.Modules;

/// <summary>
/// A lookup table, as torch.nn.Embedding: integer indices of any shape -> their rows of weight (num_embeddings,
/// embedding_dim), initialised N(0, 1) (the padding_idx row, if any, is zero and receives no gradient).
/// </summary>
public sealed class Embedding : torch.nn.Module<Tensor, Tensor>
{
    private Parameter _weight;

    public Embedding(long num_embeddings, long embedding_dim, long? padding_idx = null) : base(nameof(Embedding))
    {
        LayerUtil.Positive(num_embeddings, nameof(num_embeddings));
        LayerUtil.Positive(embedding_dim, nameof(embedding_dim));
        if (padding_idx is { } pi)
        {
            if (pi >= num_embeddings || pi < -num_embeddings)
                throw new ArgumentOutOfRangeException(nameof(padding_idx), padding_idx, "padding_idx must be within num_embeddings");
            padding_idx = pi < 0 ? pi + num_embeddings : pi;
        }
        this.num_embeddings = num_embeddings;
        this.embedding_dim = embedding_dim;
        this.padding_idx = padding_idx;
        _weight = RegisterParameter("weight", LayerUtil.NewParameter(num_embeddings, embedding_dim))!;
        reset_parameters();
    }

    public long num_embeddings { get; }
    public long embedding_dim { get; }
    public long? padding_idx { get; }

    /// <summary>(num_embeddings, embedding_dim).</summary>
    public Parameter weight { get => _weight; set => _weight = RegisterParameter("weight", value ?? throw new ArgumentNullException(nameof(value)))!; }

    /// <summary>Re-draws weight from N(0, 1) and zeroes the padding row.</summary>
    public void reset_parameters()
    {
        torch.nn.init.normal_(_weight);
        if (padding_idx is { } pi)
        {
            var keep = new float[num_embeddings];
            Array.Fill(keep, 1f);
            keep[pi] = 0f;
            using var mask = torch.tensor(keep, [num_embeddings, 1]);
            using (torch.no_grad()) _weight.mul_(mask);
        }
    }

    public override Tensor forward(Tensor input) => torch.nn.functional.embedding(input, _weight, padding_idx);
}
