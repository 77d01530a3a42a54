using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// The engine's side of a fitted stage (internal; every implementation is a <see cref="Core.MLNet.StageTransformer"/>,
/// which is what applications see, as an ML.NET <c>ITransformer</c>): maps the engine's tensor data view to another
/// (lazily where it can) and writes its model entry.
/// </summary>
internal interface ITransformer
{
    /// <summary>The schema <see cref="Transform"/> would produce; throws <see cref="SchemaException"/> on a missing/wrong column.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>Applies the stage. Checks the input schema first.</summary>
    IDataView Transform(IDataView input);

    /// <summary>Writes options, weights and anything else needed to rebuild this transformer (see <see cref="ModelSaveContext"/>).</summary>
    void Save(ModelSaveContext context);
}

/// <summary>Progress of a long-running stage: which stage, where it is, the loss, speed and time left.</summary>
public sealed record TrainingProgress(
    string Stage,
    int Epoch,
    int Epochs,
    long Step,
    long StepsPerEpoch,
    double? Loss,
    double? ItemsPerSecond,
    TimeSpan Elapsed,
    TimeSpan? Eta,
    string? Message = null)
{
    /// <summary>Overall completion in [0,1].</summary>
    public double Fraction => Epochs <= 0 || StepsPerEpoch <= 0 ? 0 :
        Math.Clamp(((Epoch - 1) * (double)StepsPerEpoch + Step) / (Epochs * (double)StepsPerEpoch), 0, 1);

    public override string ToString() =>
        $"{Stage} epoch {Epoch}/{Epochs} step {Step}/{StepsPerEpoch}" +
        (Loss is double l ? $" loss {l:G5}" : "") +
        (ItemsPerSecond is double s ? $" {s:F1} items/s" : "") +
        (Eta is TimeSpan e ? $" ETA {e:hh\\:mm\\:ss}" : "") +
        (Message is null ? "" : " " + Message);
}
