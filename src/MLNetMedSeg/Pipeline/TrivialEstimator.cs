using MLNetMedSeg.Data;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// An estimator with nothing to learn (as ML.NET's TrivialEstimator): it wraps a ready transformer, made (and its
/// options validated) when the estimator is constructed, and <see cref="Fit"/> only checks the input schema.
/// </summary>
public abstract class TrivialEstimator<TTransformer> : IEstimator<TTransformer> where TTransformer : ITransformer
{
    protected TrivialEstimator(TTransformer transformer)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        Transformer = transformer;
    }

    /// <summary>The transformer <see cref="Fit"/> returns.</summary>
    protected TTransformer Transformer { get; }

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Transformer.GetOutputSchema(inputSchema);

    public TTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        Transformer.GetOutputSchema(input.Schema);
        return Transformer;
    }
}
