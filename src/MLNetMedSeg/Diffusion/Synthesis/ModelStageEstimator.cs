using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// Base of the estimators that wrap a fitted diffusion model and train nothing (RePaint, styling): Fit checks the input's
/// columns (a missing or wrongly typed column is a <see cref="Data.SchemaException"/> naming it) and returns the stage,
/// which shares the model given to the catalog (it does not dispose it).
/// </summary>
/// <typeparam name="TTransformer">The stage.</typeparam>
public abstract class ModelStageEstimator<TTransformer> : Microsoft.ML.IEstimator<TTransformer>
    where TTransformer : Core.MLNet.StageTransformer
{
    private protected ModelStageEstimator(MedSegContext context, Core.MLNet.StageTransformer model)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(model);
        Context = context;
        Model = model;
    }

    private protected MedSegContext Context { get; }

    private protected Core.MLNet.StageTransformer Model { get; }

    /// <summary>The stage's output schema over the engine's view of an input schema (checks the columns).</summary>
    private protected abstract Data.DataViewSchema OutputSchema(Data.DataViewSchema input);

    /// <summary>The stage, sharing <see cref="Model"/>.</summary>
    private protected abstract TTransformer CreateTransformer();

    /// <summary>ML.NET: checks the columns the stage reads, naming a missing or wrong one, and returns the stage.</summary>
    public TTransformer Fit(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Core.MLNet.MLNetData.CheckSchema(input.Schema, OutputSchema);
        return CreateTransformer();
    }

    /// <summary>ML.NET schema propagation: checks the columns and adds the stage's column.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, OutputSchema);
}
