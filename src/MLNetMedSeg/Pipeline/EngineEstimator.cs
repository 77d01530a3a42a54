using MLNetMedSeg.Data;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// The engine's side of an estimator (internal; applications see the ML.NET <c>IEstimator</c> each stage also is):
/// schema propagation and Fit over the engine's tensor data views. The tests' engine workout runs every stage through it.
/// </summary>
internal interface IEngineEstimator<out TTransformer> where TTransformer : ITransformer
{
    /// <summary>The schema the fitted transformer will produce; throws <see cref="SchemaException"/> naming a missing/wrong column.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>Trains on <paramref name="input"/>.</summary>
    TTransformer Fit(IDataView input, CancellationToken cancellationToken = default);
}
