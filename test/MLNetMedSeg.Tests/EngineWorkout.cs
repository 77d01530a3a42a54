using System.Text;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using MLNetMedSeg.Core;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNetMedSeg.Tests;

/// <summary>Options of <see cref="EstimatorWorkout.Run"/>.</summary>
internal sealed class WorkoutOptions
{
    /// <summary>
    /// The type the required column is given in the wrong-type check. Default: for a tensor column, the same shape
    /// with another dtype (Int64 for a Float32 column, Float32 otherwise); for text, Number; for number, Text.
    /// </summary>
    public ColumnType? WrongType { get; set; }

    /// <summary>Further columns the estimator needs; each is removed (and retyped) in turn like the required column.</summary>
    public IReadOnlyList<string> MoreRequiredColumns { get; set; } = [];

    /// <summary>Folder for the temporary model file (default: the system temp folder). The file is deleted afterwards.</summary>
    public string? TempFolder { get; set; }

    /// <summary>Check that the live tensor count is back to its starting value (default true).</summary>
    public bool CheckLiveTensors { get; set; } = true;
}

/// <summary>What the workout saw, for further assertions.</summary>
/// <param name="OutputSchema">The schema of the fitted transformer's output.</param>
/// <param name="Rows">The number of rows compared.</param>
/// <param name="ModelBytes">The size of the saved model file.</param>
internal sealed record WorkoutResult(DataViewSchema OutputSchema, long Rows, long ModelBytes);

/// <summary>
/// The engine-level checks of a stage (its internal side, over the engine's tensor views; the ML.NET side has
/// <c>MLNetWorkout</c> in the Testing package, run on every stage by <c>StageWorkoutTests</c>):
/// (a) <c>GetOutputSchema(data.Schema)</c> equals the schema of the fitted transformer's actual output (names,
/// order, types) and every output value fits its column type;
/// (b) a view lacking the required column, and one where it has a wrong type, make both GetOutputSchema and Fit
/// throw a <see cref="SchemaException"/> naming the column;
/// (c) Fit → <c>ml.Model.Save</c> → <c>ml.Model.Load</c> (the ML.NET model file every stage is saved in) → Transform
/// gives bit-identical values in every column (run it with a CPU context);
/// (d) no tensor was left to the garbage collector: <see cref="TorchRuntime.FinalizedTensorCount"/> did not move
/// (every tensor the stage made was disposed deterministically, including when the fitted and loaded transformers
/// were disposed).
/// Failures are <see cref="AssertFailedException"/>s that say which check failed and why.
/// </summary>
internal static class EstimatorWorkout
{
    /// <summary>Runs the workout on <paramref name="estimator"/> with <paramref name="data"/> (a few small rows).</summary>
    /// <param name="ctx">The context (CPU for bit-identical round trips).</param>
    /// <param name="estimator">The estimator under test; it is fitted several times.</param>
    /// <param name="data">Valid training data; not disposed.</param>
    /// <param name="requiredColumn">A column the estimator needs.</param>
    /// <param name="options">More columns, the wrong type to use, where to put the model file.</param>
    public static WorkoutResult Run(MedSegContext ctx, IEngineEstimator<ITransformer> estimator, IDataView data, string requiredColumn, WorkoutOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(estimator);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentException.ThrowIfNullOrEmpty(requiredColumn);
        options ??= new WorkoutOptions();
        string name = estimator.GetType().Name;
        // Runs the finalizers of what earlier code left behind first, so that their late release cannot move the count.
        long baseline = TorchRuntime.FinalizedTensorCount;

        // (b) missing / wrongly-typed columns: before anything is fitted.
        foreach (var col in new[] { requiredColumn }.Concat(options.MoreRequiredColumns))
        {
            if (!data.Schema.Contains(col))
                throw new AssertFailedException($"EstimatorWorkout({name}): the data has no column '{col}' (it has: {data.Schema})");
            CheckSchemaError(name, estimator, SchemaEditedView.WithoutColumn(data, col), col, "missing");
            var wrong = col == requiredColumn && options.WrongType is not null ? options.WrongType : WrongTypeFor(data.Schema[col].Type);
            CheckSchemaError(name, estimator, SchemaEditedView.WithColumnType(data, col, wrong), col, $"typed {wrong} instead of {data.Schema[col].Type}");
        }

        // (a) schema propagation.
        DataViewSchema predicted;
        try { predicted = estimator.GetOutputSchema(data.Schema); }
        catch (Exception ex) { throw new AssertFailedException($"EstimatorWorkout({name}) (a): GetOutputSchema threw on valid data: {ex.GetType().Name}: {ex.Message}", ex); }

        string folder = options.TempFolder ?? Path.GetTempPath();
        string file = Path.Combine(folder, $"workout-{name}-{Guid.NewGuid():N}.zip");
        ITransformer? fitted = null, loaded = null;
        WorkoutResult result;
        try
        {
            try { fitted = estimator.Fit(data); }
            catch (Exception ex) { throw new AssertFailedException($"EstimatorWorkout({name}) (a): Fit threw on valid data: {ex.GetType().Name}: {ex.Message}", ex); }
            if (fitted is null) throw new AssertFailedException($"EstimatorWorkout({name}) (a): Fit returned null");

            DataViewSchema fromTransformer;
            try { fromTransformer = fitted.GetOutputSchema(data.Schema); }
            catch (Exception ex) { throw new AssertFailedException($"EstimatorWorkout({name}) (a): the transformer's GetOutputSchema threw on valid data: {ex.GetType().Name}: {ex.Message}", ex); }
            AssertSameSchema(name, "(a) estimator.GetOutputSchema vs transformer.GetOutputSchema", predicted, fromTransformer);

            var output = fitted.Transform(data);
            AssertSameSchema(name, "(a) GetOutputSchema vs the schema of the actual Transform output", predicted, output.Schema);
            long rows = CheckValuesFitSchema(name, output);

            // (c) save → load → identical output.
            try { TestModels.Save((Microsoft.ML.ITransformer)fitted, file); }
            catch (Exception ex) { throw new AssertFailedException($"EstimatorWorkout({name}) (c): saving the fitted {fitted.GetType().Name} failed: {ex.GetType().Name}: {ex.Message}", ex); }
            long bytes = new FileInfo(file).Length;
            try { loaded = (ITransformer)TestModels.Load(file); }
            catch (Exception ex) { throw new AssertFailedException($"EstimatorWorkout({name}) (c): loading the saved {fitted.GetType().Name} failed: {ex.GetType().Name}: {ex.Message}", ex); }
            var reloaded = loaded.Transform(data);
            AssertSameSchema(name, "(c) output schema of the loaded transformer vs the fitted one", output.Schema, reloaded.Schema);
            AssertIdentical(name, output, reloaded);
            result = new WorkoutResult(output.Schema, rows, bytes);
            if (!ReferenceEquals(output, data)) (output as IDisposable)?.Dispose();
            if (!ReferenceEquals(reloaded, data)) (reloaded as IDisposable)?.Dispose();
        }
        finally
        {
            (fitted as IDisposable)?.Dispose();
            (loaded as IDisposable)?.Dispose();
            try { File.Delete(file); } catch (IOException) { }
        }

        // (d) nothing leaked.
        long finalized = TorchRuntime.FinalizedTensorCount;
        if (options.CheckLiveTensors && finalized != baseline)
            throw new AssertFailedException(
                $"EstimatorWorkout({name}) (d): {finalized - baseline} tensor(s) were left to the garbage collector while fitting, saving, " +
                "loading, transforming and disposing: a tensor was not disposed (outside a dispose scope, or kept by a transformer that does not dispose it)");
        return result;
    }

    private static ColumnType WrongTypeFor(ColumnType type) => type switch
    {
        TensorColumnType t => new TensorColumnType(t.DType == ScalarType.Float32 ? ScalarType.Int64 : ScalarType.Float32, t.Shape),
        TextColumnType => NumberColumnType.Instance,
        _ => TextColumnType.Instance,
    };

    private static void CheckSchemaError(string name, IEngineEstimator<ITransformer> estimator, IDataView bad, string column, string what)
    {
        foreach (var (call, act) in new (string, Action)[]
        {
            ("GetOutputSchema", () => estimator.GetOutputSchema(bad.Schema)),
            ("Fit", () =>
            {
                var xf = estimator.Fit(bad);
                (xf as IDisposable)?.Dispose();
            }),
        })
        {
            Exception? caught = null;
            try { act(); }
            catch (Exception ex) { caught = ex; }
            if (caught is null)
                throw new AssertFailedException($"EstimatorWorkout({name}) (b): {call} accepted data whose column '{column}' is {what}; a SchemaException naming '{column}' was expected");
            if (caught is not SchemaException se)
                throw new AssertFailedException($"EstimatorWorkout({name}) (b): {call} with column '{column}' {what} threw {caught.GetType().Name} ({caught.Message}) instead of a SchemaException naming '{column}'", caught);
            if (se.ColumnName != column || !se.Message.Contains(column, StringComparison.Ordinal))
                throw new AssertFailedException($"EstimatorWorkout({name}) (b): {call} with column '{column}' {what} threw a SchemaException about column '{se.ColumnName}' ({se.Message}); it should name '{column}'", caught);
        }
    }

    private static void AssertSameSchema(string name, string what, DataViewSchema expected, DataViewSchema actual)
    {
        var problems = new List<string>();
        if (expected.Count != actual.Count) problems.Add($"{expected.Count} columns vs {actual.Count}");
        for (int i = 0; i < Math.Max(expected.Count, actual.Count); i++)
        {
            string e = i < expected.Count ? expected[i].ToString() : "(none)";
            string a = i < actual.Count ? actual[i].ToString() : "(none)";
            if (e != a) problems.Add($"column {i}: {e} vs {a}");
        }
        if (problems.Count > 0)
            throw new AssertFailedException($"EstimatorWorkout({name}) {what} differ: {string.Join("; ", problems)}\n  expected: {expected}\n  actual:   {actual}");
    }

    private static long CheckValuesFitSchema(string name, IDataView output)
    {
        using var cur = output.GetRowCursor(output.Schema);
        long rows = 0;
        while (cur.MoveNext())
        {
            foreach (var col in output.Schema)
            {
                object v;
                try { v = cur.GetValue(col); }
                catch (Exception ex) { throw new AssertFailedException($"EstimatorWorkout({name}) (a): reading row {rows}, column '{col.Name}' of the output failed: {ex.GetType().Name}: {ex.Message}", ex); }
                bool ok = col.Type switch
                {
                    TensorColumnType t => v is Tensor x && !x.IsInvalid && t.Accepts(x.dtype, x.shape),
                    TextColumnType => v is string,
                    NumberColumnType => v is double,
                    _ => true,
                };
                if (!ok)
                    throw new AssertFailedException($"EstimatorWorkout({name}) (a): row {rows}, column '{col.Name}' declared {col.Type} holds {Describe(v)}");
            }
            rows++;
        }
        if (output.GetRowCount() is long n && n != rows)
            throw new AssertFailedException($"EstimatorWorkout({name}) (a): the output says it has {n} rows but a cursor gave {rows}");
        return rows;
    }

    private static string Describe(object v) => v switch
    {
        Tensor t when t.IsInvalid => "a disposed tensor",
        Tensor t => $"a {t.dtype} tensor [{string.Join(",", t.shape)}]",
        null => "null",
        _ => $"a {v.GetType().Name} ({v})",
    };

    private static void AssertIdentical(string name, IDataView expected, IDataView actual)
    {
        using var ce = expected.GetRowCursor(expected.Schema);
        using var ca = actual.GetRowCursor(actual.Schema);
        long row = 0;
        while (true)
        {
            bool me = ce.MoveNext(), ma = ca.MoveNext();
            if (me != ma)
                throw new AssertFailedException($"EstimatorWorkout({name}) (c): the loaded transformer gives {(ma ? "more" : "fewer")} rows than the fitted one ({row} in common)");
            if (!me) break;
            foreach (var col in expected.Schema)
            {
                object e = ce.GetValue(col), a = ca.GetValue(ca.Schema[col.Name]);
                if (!BitIdentical(e, a, out string why))
                    throw new AssertFailedException($"EstimatorWorkout({name}) (c): row {row}, column '{col.Name}': the loaded transformer's value differs from the fitted one's: {why}");
            }
            row++;
        }
    }

    /// <summary>True if two cell values are bit-identical (tensors: dtype, shape and bytes; numbers: bits; text: ordinal).</summary>
    public static bool BitIdentical(object expected, object actual, out string difference)
    {
        difference = "";
        switch (expected, actual)
        {
            case (Tensor e, Tensor a):
                if (e.dtype != a.dtype || !e.shape.SequenceEqual(a.shape))
                {
                    difference = $"{Describe(e)} vs {Describe(a)}";
                    return false;
                }
                using (torch.NewDisposeScope())
                {
                    var be = Safetensors.SaveToBytes(new Dictionary<string, Tensor> { ["v"] = e });
                    var ba = Safetensors.SaveToBytes(new Dictionary<string, Tensor> { ["v"] = a });
                    if (be.AsSpan().SequenceEqual(ba)) return true;
                    long n = e.numel();
                    var sb = new StringBuilder($"{Describe(e)} with different bits");
                    if (n > 0 && e.dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte)
                    {
                        var de = e.to(ScalarType.Float64, torch.CPU).reshape(-1).ToArray<double>();
                        var da = a.to(ScalarType.Float64, torch.CPU).reshape(-1).ToArray<double>();
                        int k = Enumerable.Range(0, de.Length).FirstOrDefault(i => BitConverter.DoubleToInt64Bits(de[i]) != BitConverter.DoubleToInt64Bits(da[i]));
                        double maxAbs = de.Zip(da, (x, y) => Math.Abs(x - y)).Max();
                        sb.Append($"; first at flat index {k}: {de[k]:R} vs {da[k]:R}; max |difference| {maxAbs:G4}");
                    }
                    difference = sb.ToString();
                    return false;
                }
            case (string e, string a):
                if (e == a) return true;
                difference = $"\"{e}\" vs \"{a}\"";
                return false;
            case (double e, double a):
                if (BitConverter.DoubleToInt64Bits(e) == BitConverter.DoubleToInt64Bits(a)) return true;
                difference = $"{e:R} vs {a:R}";
                return false;
            default:
                difference = $"{Describe(expected)} vs {Describe(actual)}";
                return Equals(expected, actual);
        }
    }
}
