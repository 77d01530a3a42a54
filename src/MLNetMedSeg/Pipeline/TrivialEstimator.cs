using MLNetMedSeg.Data;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// An estimator with nothing to learn (as ML.NET's TrivialEstimator): it wraps a ready transformer, made (and its
/// options validated) when the estimator is constructed, and <see cref="Fit(Microsoft.ML.IDataView)"/> only checks the input schema.
/// </summary>
public abstract class TrivialEstimator<TTransformer> : Microsoft.ML.IEstimator<TTransformer>, Pipeline.IEngineEstimator<TTransformer>
    where TTransformer : Core.MLNet.StageTransformer
{
    Data.DataViewSchema Pipeline.IEngineEstimator<TTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    TTransformer Pipeline.IEngineEstimator<TTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    private protected TrivialEstimator(TTransformer transformer)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        Transformer = transformer;
    }

    /// <summary>The transformer <see cref="Fit(Microsoft.ML.IDataView)"/> returns.</summary>
    protected TTransformer Transformer { get; }

    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Transformer.GetOutputSchema(inputSchema);

    internal TTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        Transformer.GetOutputSchema(input.Schema);
        return Transformer;
    }

    /// <summary>ML.NET: checks the input schema and returns the transformer.</summary>
    public TTransformer Fit(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Transformer.GetOutputSchema(input.Schema);
        return Transformer;
    }

    /// <summary>ML.NET schema propagation (checks the columns the transformer reads, naming a missing or wrong one).</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, Transformer.GetOutputSchema);
}
