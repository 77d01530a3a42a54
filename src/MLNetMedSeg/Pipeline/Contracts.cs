using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// A fitted stage: maps a data view to a data view (lazily where it can) and saves itself into a model file.
/// Public and implementable by applications, as ML.NET's ITransformer, including saving.
/// </summary>
public interface ITransformer
{
    /// <summary>The schema <see cref="Transform"/> would produce; throws <see cref="SchemaException"/> on a missing/wrong column.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>Applies the stage. Checks the input schema first.</summary>
    IDataView Transform(IDataView input);

    /// <summary>Writes options, weights and anything else needed to rebuild this transformer (see <see cref="ModelSaveContext"/>).</summary>
    void Save(ModelSaveContext context);
}

/// <summary>
/// An unfitted stage: learns from data and returns a transformer. <see cref="GetOutputSchema"/> lets a chain check
/// every stage's inputs before any training starts.
/// </summary>
public interface IEstimator<out TTransformer> where TTransformer : ITransformer
{
    /// <summary>The schema the fitted transformer will produce; throws <see cref="SchemaException"/> naming a missing/wrong column.</summary>
    DataViewSchema GetOutputSchema(DataViewSchema inputSchema);

    /// <summary>Trains on <paramref name="input"/>. Long fits report progress through the context and honour cancellation.</summary>
    TTransformer Fit(IDataView input, CancellationToken cancellationToken = default);
}

/// <summary>
/// When a transformer in a chain applies. Augmenters are <see cref="Training"/>-only: they enrich the data used to
/// fit later stages but are skipped when the fitted pipeline transforms new data (<see cref="Scoring"/>).
/// </summary>
[Flags]
public enum TransformerScope
{
    None = 0,
    Training = 1,
    Testing = 2,
    Scoring = 4,
    TrainTest = Training | Testing,
    Everything = Training | Testing | Scoring,
}

/// <summary>
/// A transformer that can say, for itself, when it applies (e.g. an augmenter defaults to Training); chains use it
/// when the caller gives no scope.
/// </summary>
public interface IScopedTransformer : ITransformer
{
    TransformerScope DefaultScope { get; }
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
