using Microsoft.ML;

namespace MLNetMedSeg.Tests;

/// <summary>Model files for tests of a stage built on the engine directly: saved and loaded the way applications do, with ML.NET.</summary>
internal static class TestModels
{
    /// <summary><c>ml.Model.Save</c> of <paramref name="model"/> without an input schema.</summary>
    public static void Save(ITransformer model, string path) => new MLContext(seed: 0).Model.Save(model, null, path);

    /// <summary><c>ml.Model.Load</c> in a fresh MLContext (CPU).</summary>
    public static ITransformer Load(string path, int seed = 0) => new MLContext(seed: seed).Model.Load(path, out _);
}
