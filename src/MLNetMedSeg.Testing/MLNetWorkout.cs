using System.Globalization;
using System.Reflection;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.MLNet;
using TrainingProgress = MLNetMedSeg.Pipeline.TrainingProgress;

namespace MLNetMedSeg.Testing;

/// <summary>Options of <see cref="MLNetWorkout"/>.</summary>
public sealed class MLNetWorkoutOptions
{
    /// <summary>Further columns the estimator needs; each is removed, then retyped, in turn like the required column.</summary>
    public IReadOnlyList<string> MoreRequiredColumns { get; set; } = [];

    /// <summary>
    /// The ML.NET type the required column is given in the wrong-type check. Default: text for an image, vector or
    /// number column; a Single number for a text column; a float vector of the same dimensions is given Double items
    /// (a <c>double[]</c> where <c>float[]</c> was meant).
    /// </summary>
    public DataViewType? WrongType { get; set; }

    /// <summary>
    /// Largest absolute difference allowed between a <c>PredictionEngine</c>'s float values (the stage on a batch of one
    /// row) and <c>Transform</c>'s (the stage's own batches): convolutions over batches of other sizes may round
    /// differently. Default 1e-5. Other columns (text, integers) must be equal.
    /// </summary>
    public double PredictionTolerance { get; set; } = 1e-5;

    /// <summary>Folder for the temporary model file (default: the system temp folder). The file is deleted afterwards.</summary>
    public string? TempFolder { get; set; }
}

/// <summary>What the ML.NET workout saw, for further assertions.</summary>
/// <param name="OutputSchema">The schema of the fitted model's <c>Transform</c> output.</param>
/// <param name="AddedColumns">The columns the estimator added or replaced (name: ML.NET type).</param>
/// <param name="Rows">Rows compared between the fitted and the loaded model.</param>
/// <param name="ModelBytes">Size of the model file <c>ml.Model.Save</c> wrote.</param>
/// <param name="PredictionEngineRows">Rows compared between a <c>PredictionEngine</c> and <c>Transform</c> (0 when the model is not row-to-row).</param>
public sealed record MLNetWorkoutResult(DataViewSchema OutputSchema, IReadOnlyList<string> AddedColumns, long Rows, long ModelBytes, long PredictionEngineRows);

/// <summary>
/// The checks every stage's ML.NET face passes ("workout"), on ML.NET's own types:
/// (a) <c>estimator.GetOutputSchema(SchemaShape)</c> and the fitted model's <c>GetOutputSchema(DataViewSchema)</c>
/// agree on every column (name, vector kind, item type, key-ness), the added ones above all; the schema of
/// <c>Transform</c>'s output is the fitted model's; every output value has its column's length;
/// (b) a view lacking a required column, and one where it has a wrong type, make both
/// <c>GetOutputSchema(SchemaShape)</c> and <c>Fit</c> throw an exception naming the column ('name'), and Fit does so
/// before any training (no <see cref="TrainingProgress"/> reached <c>ml.MedSeg().Progress</c>);
/// (c) <c>Fit</c> → <c>ml.Model.Save</c> → <c>ml.Model.Load</c> in a new <see cref="MLContext"/> → <c>Transform</c> gives
/// bit-identical values in every column (run it on the CPU), and the saved input schema is the data's;
/// (e) for a row-to-row model, predicting row after row over the loaded model, and over the fitted one, gives
/// <c>Transform</c>'s values (within
/// <see cref="MLNetWorkoutOptions.PredictionTolerance"/>): a real <c>PredictionEngine</c> in the typed overload, the
/// row mapper it runs (<c>ITransformer.GetRowToRowMapper</c>) over a cursor in the data-view overload;
/// (d) no tensor was left to the garbage collector over the whole workout (<see cref="TorchRuntime.FinalizedTensorCount"/>
/// did not move: every tensor, those of cursors and prediction engines included, was disposed deterministically), and a
/// second full read of the fitted model's output leaves <see cref="TorchRuntime.LiveTensorCount"/> where it was (a
/// cursor frees its values when disposed; nothing accumulates per pass).
/// Failures are <see cref="AssertFailedException"/>s that say which check failed and why.
/// </summary>
public static class MLNetWorkout
{
    /// <summary>
    /// Runs the workout on <paramref name="estimator"/> over <paramref name="rows"/> (a few small rows, loaded with
    /// <c>ml.Data.LoadFromEnumerable</c>), with a real <c>PredictionEngine&lt;TInput, …&gt;</c> for check (e).
    /// </summary>
    public static MLNetWorkoutResult Run<TInput>(MLContext ml, IEstimator<ITransformer> estimator, IReadOnlyList<TInput> rows, string requiredColumn,
        MLNetWorkoutOptions? options = null) where TInput : class
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(rows);
        var data = ml.Data.LoadFromEnumerable(rows);
        return RunCore(ml, estimator, data, requiredColumn, options, (loaded, ml2, expected) => PredictionEngineValues(loaded, ml2, rows, expected));
    }

    /// <summary>
    /// Runs the workout on <paramref name="estimator"/> over <paramref name="data"/> (a few small rows; any ML.NET data
    /// view). Check (e) runs the loaded model's row mapper (what a <c>PredictionEngine</c> runs) over a cursor of the data.
    /// </summary>
    /// <param name="ml">The context the estimator was made from (CPU, for bit-identical round trips).</param>
    /// <param name="estimator">The estimator (or chain) under test; it is fitted several times.</param>
    /// <param name="data">Valid training data.</param>
    /// <param name="requiredColumn">A column the estimator needs.</param>
    /// <param name="options">More required columns, the wrong type, the PredictionEngine tolerance, where the model file goes.</param>
    public static MLNetWorkoutResult Run(MLContext ml, IEstimator<ITransformer> estimator, IDataView data, string requiredColumn, MLNetWorkoutOptions? options = null) =>
        RunCore(ml, estimator, data, requiredColumn, options, (loaded, _, expected) => RowMapperValues(loaded, data, expected));

    private delegate List<Dictionary<string, object>> RowByRow(ITransformer model, MLContext ml, DataViewSchema expected);

    private static MLNetWorkoutResult RunCore(MLContext ml, IEstimator<ITransformer> estimator, IDataView data, string requiredColumn,
        MLNetWorkoutOptions? options, RowByRow rowByRow)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(estimator);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentException.ThrowIfNullOrEmpty(requiredColumn);
        options ??= new MLNetWorkoutOptions();
        string name = Describe(estimator);
        // Runs the finalizers of what earlier code left behind first, so that their late release cannot move the count.
        long finalizedBefore = TorchRuntime.FinalizedTensorCount;

        // (b) missing / wrongly typed columns, before anything is fitted.
        foreach (var col in new[] { requiredColumn }.Concat(options.MoreRequiredColumns))
        {
            var column = data.Schema.GetColumnOrNull(col)
                ?? throw new AssertFailedException($"MLNetWorkout({name}): the data has no column '{col}' (it has: {string.Join(", ", data.Schema.Select(c => c.Name))})");
            CheckSchemaError(ml, name, estimator, MLNetSchemaEditedView.WithoutColumn(data, col), col, "missing");
            var wrong = col == requiredColumn && options.WrongType is not null ? options.WrongType : WrongTypeFor(column.Type);
            CheckSchemaError(ml, name, estimator, MLNetSchemaEditedView.WithColumnType(data, col, wrong), col, $"typed {wrong} instead of {column.Type}");
        }

        // (a) schema propagation.
        SchemaShape predicted;
        try { predicted = estimator.GetOutputSchema(MLContextBridge.ShapeOf(data.Schema)); }
        catch (Exception ex) { throw new AssertFailedException($"MLNetWorkout({name}) (a): GetOutputSchema(SchemaShape) threw on valid data: {ex.GetType().Name}: {ex.Message}", ex); }

        string folder = options.TempFolder ?? Path.GetTempPath();
        string file = Path.Combine(folder, $"mlnet-workout-{Guid.NewGuid():N}.zip");
        ITransformer? fitted = null, loaded = null;
        MLNetWorkoutResult result;
        try
        {
            try { fitted = estimator.Fit(data); }
            catch (Exception ex) { throw new AssertFailedException($"MLNetWorkout({name}) (a): Fit threw on valid data: {ex.GetType().Name}: {ex.Message}", ex); }
            if (fitted is null) throw new AssertFailedException($"MLNetWorkout({name}) (a): Fit returned null");

            DataViewSchema fromTransformer;
            try { fromTransformer = fitted.GetOutputSchema(data.Schema); }
            catch (Exception ex) { throw new AssertFailedException($"MLNetWorkout({name}) (a): the fitted model's GetOutputSchema threw on valid data: {ex.GetType().Name}: {ex.Message}", ex); }
            var added = Added(data.Schema, fromTransformer);
            AssertSameShape(name, predicted, MLContextBridge.ShapeOf(fromTransformer), added);
            var output = fitted.Transform(data);
            AssertSameSchema(name, "(a) the fitted model's GetOutputSchema vs the schema of its Transform output", fromTransformer, output.Schema);
            var expected = ReadAll(name, "(a) reading the fitted model's output", output, checkLengths: true);

            // (d, second half) a second full pass leaves the live tensor count where it was.
            long live = TorchRuntime.LiveTensorCount;
            ReadAll(name, "(d) reading the fitted model's output again", output, checkLengths: false);
            long liveAfter = TorchRuntime.LiveTensorCount;
            if (liveAfter != live)
                throw new AssertFailedException($"MLNetWorkout({name}) (d): reading the output a second time changed the live tensor count by {liveAfter - live}: " +
                    "a cursor (or the stage under it) kept tensors after it was disposed, or freed ones it did not make");

            // (c) save → load in a new context → identical output.
            try { ml.Model.Save(fitted, data.Schema, file); }
            catch (Exception ex) { throw new AssertFailedException($"MLNetWorkout({name}) (c): ml.Model.Save of the fitted {fitted.GetType().Name} failed: {ex.GetType().Name}: {ex.Message}", ex); }
            long bytes = new FileInfo(file).Length;
            var ml2 = new MLContext(seed: 12345);
            DataViewSchema savedSchema;
            try { loaded = ml2.Model.Load(file, out savedSchema); }
            catch (Exception ex) { throw new AssertFailedException($"MLNetWorkout({name}) (c): ml.Model.Load in a new MLContext failed: {ex.GetType().Name}: {ex.Message}", ex); }
            AssertSameSchema(name, "(c) the input schema saved in the model vs the data's", data.Schema, savedSchema);
            var reloaded = loaded.Transform(data);
            AssertSameSchema(name, "(c) the loaded model's output schema vs the fitted one's", output.Schema, reloaded.Schema);
            var again = ReadAll(name, "(c) reading the loaded model's output", reloaded, checkLengths: false);
            Compare(name, "(c) loaded model vs fitted model (bit-identical)", expected, again, output.Schema.Where(c => !c.IsHidden).Select(c => c.Name), 0);

            // (e) row by row, over the loaded model (and the fitted one).
            long engineRows = 0;
            if (fitted.IsRowToRowMapper != loaded.IsRowToRowMapper)
                throw new AssertFailedException($"MLNetWorkout({name}) (e): the fitted model says IsRowToRowMapper = {fitted.IsRowToRowMapper}, the loaded one {loaded.IsRowToRowMapper}");
            if (loaded.IsRowToRowMapper)
            {
                foreach (var (model, context, which) in new[] { (loaded, ml2, "loaded"), (fitted, ml, "fitted") })
                {
                    var byRow = rowByRow(model, context, output.Schema);
                    if (byRow.Count != expected.Count)
                        throw new AssertFailedException($"MLNetWorkout({name}) (e): predicting row by row ({which} model) gave {byRow.Count} rows, Transform {expected.Count}");
                    Compare(name, $"(e) PredictionEngine (row by row, {which} model) vs Transform", expected, byRow, added, options.PredictionTolerance);
                    engineRows = byRow.Count;
                }
            }
            result = new MLNetWorkoutResult(output.Schema, added.Select(c => $"{c}: {fromTransformer[c].Type}").ToArray(), expected.Count, bytes, engineRows);
        }
        finally
        {
            (fitted as IDisposable)?.Dispose();
            (loaded as IDisposable)?.Dispose();
            try { File.Delete(file); } catch (IOException) { }
        }

        // (d) nothing left to the finalizer: checked last, after the models were disposed.
        long finalized = TorchRuntime.FinalizedTensorCount;
        if (finalized != finalizedBefore)
            throw new AssertFailedException(
                $"MLNetWorkout({name}) (d): {finalized - finalizedBefore} tensor(s) were left to the garbage collector while fitting, transforming, " +
                "saving, loading, predicting and disposing: a tensor was not disposed (outside a dispose scope, or kept by a cursor, row or model that does not dispose it)");
        return result;
    }

    private static string Describe(IEstimator<ITransformer> estimator)
    {
        var t = estimator.GetType();
        if (!t.IsGenericType) return t.Name;
        var args = t.GetGenericArguments();
        return $"{t.Name[..t.Name.IndexOf('`')]}<{string.Join(", ", args.Select(a => a.Name))}>";
    }

    /// <summary>A wrong ML.NET type for a column of type <paramref name="type"/> (see <see cref="MLNetWorkoutOptions.WrongType"/>).</summary>
    public static DataViewType WrongTypeFor(DataViewType type) => type switch
    {
        VectorDataViewType v when v.ItemType == NumberDataViewType.Single && v.Dimensions.Length > 0 && v.IsKnownSize =>
            new VectorDataViewType(NumberDataViewType.Double, v.Dimensions.ToArray()),
        TextDataViewType => NumberDataViewType.Single,
        _ => TextDataViewType.Instance,
    };

    private static void CheckSchemaError(MLContext ml, string name, IEstimator<ITransformer> estimator, IDataView bad, string column, string what)
    {
        var catalog = ml.MedSeg();
        var previous = catalog.Progress;
        var training = new TrainingWatch(previous);
        catalog.Progress = training;
        try
        {
            foreach (var (call, act) in new (string, Action)[]
            {
                ("GetOutputSchema(SchemaShape)", () => estimator.GetOutputSchema(MLContextBridge.ShapeOf(bad.Schema))),
                ("Fit", () => (estimator.Fit(bad) as IDisposable)?.Dispose()),
            })
            {
                Exception? caught = null;
                try { act(); }
                catch (Exception ex) { caught = ex; }
                if (caught is null)
                    throw new AssertFailedException($"MLNetWorkout({name}) (b): {call} accepted data whose column '{column}' is {what}; an exception naming '{column}' was expected");
                if (caught is AssertFailedException or OutOfMemoryException) throw caught;
                if (!caught.Message.Contains($"'{column}'", StringComparison.Ordinal))
                    throw new AssertFailedException($"MLNetWorkout({name}) (b): {call} with column '{column}' {what} threw {caught.GetType().Name} without naming '{column}': {caught.Message}", caught);
                if (caught is Data.SchemaException se && se.ColumnName != column)
                    throw new AssertFailedException($"MLNetWorkout({name}) (b): {call} with column '{column}' {what} threw a SchemaException about column '{se.ColumnName}': {se.Message}", caught);
                if (training.Reports > 0)
                    throw new AssertFailedException($"MLNetWorkout({name}) (b): {call} with column '{column}' {what} trained ({training.Reports} progress report(s), last: {training.Last}) before it threw: {caught.Message}");
            }
        }
        finally
        {
            catalog.Progress = previous;
        }
    }

    /// <summary>Counts progress reports (any means training started), passing them on.</summary>
    private sealed class TrainingWatch(IProgress<TrainingProgress>? inner) : IProgress<TrainingProgress>
    {
        public int Reports { get; private set; }

        public TrainingProgress? Last { get; private set; }

        public void Report(TrainingProgress value)
        {
            Reports++;
            Last = value;
            inner?.Report(value);
        }
    }

    /// <summary>
    /// Names of the visible output columns the stage wrote: those after the input's columns (a row-to-row transform keeps
    /// the input's columns first, hiding the ones it replaces) and any whose type is not the input's.
    /// </summary>
    private static List<string> Added(DataViewSchema input, DataViewSchema output) =>
        output.Where(c => !c.IsHidden && (c.Index >= input.Count || input.GetColumnOrNull(c.Name) is not { IsHidden: false } i || !i.Type.Equals(c.Type)))
            .Select(c => c.Name).ToList();

    private static string Shape(SchemaShape.Column c) => $"{c.Kind} of {c.ItemType}{(c.IsKey ? " (key)" : "")}";

    private static void AssertSameShape(string name, SchemaShape predicted, SchemaShape actual, IReadOnlyList<string> added)
    {
        var problems = new List<string>();
        var p = predicted.ToDictionary(c => c.Name);
        var a = actual.ToDictionary(c => c.Name);
        foreach (var (n, c) in a)
        {
            if (!p.TryGetValue(n, out var q)) problems.Add($"'{n}' ({Shape(c)}) is in the fitted model's output but not in GetOutputSchema(SchemaShape)'s");
            else if (q.Kind != c.Kind || !q.ItemType.Equals(c.ItemType) || q.IsKey != c.IsKey)
                problems.Add($"'{n}': GetOutputSchema(SchemaShape) says {Shape(q)}, the fitted model {Shape(c)}");
        }
        foreach (var (n, c) in p)
            if (!a.ContainsKey(n)) problems.Add($"'{n}' ({Shape(c)}) is predicted by GetOutputSchema(SchemaShape) but not in the fitted model's output");
        foreach (var n in added)
            if (!p.ContainsKey(n)) problems.Add($"the added column '{n}' is missing from GetOutputSchema(SchemaShape)");
        if (problems.Count > 0)
            throw new AssertFailedException($"MLNetWorkout({name}) (a): GetOutputSchema(SchemaShape) and the fitted model's GetOutputSchema(DataViewSchema) disagree: {string.Join("; ", problems.Distinct())}");
    }

    private static void AssertSameSchema(string name, string what, DataViewSchema expected, DataViewSchema actual)
    {
        var problems = new List<string>();
        if (expected.Count != actual.Count) problems.Add($"{expected.Count} columns vs {actual.Count}");
        for (int i = 0; i < Math.Min(expected.Count, actual.Count); i++)
        {
            var e = expected[i];
            var a = actual[i];
            if (e.Name != a.Name || !e.Type.Equals(a.Type) || e.IsHidden != a.IsHidden)
                problems.Add($"column {i}: {e.Name}{(e.IsHidden ? " (hidden)" : "")}: {e.Type} vs {a.Name}{(a.IsHidden ? " (hidden)" : "")}: {a.Type}");
        }
        if (problems.Count > 0)
            throw new AssertFailedException($"MLNetWorkout({name}) {what} differ: {string.Join("; ", problems)}");
    }

    // ---- reading values of any column ----

    /// <summary>Every visible column of every row (values copied: arrays, strings, numbers, image pixels).</summary>
    private static List<Dictionary<string, object>> ReadAll(string name, string what, IDataView view, bool checkLengths)
    {
        var cols = view.Schema.Where(c => !c.IsHidden).ToArray();
        var rows = new List<Dictionary<string, object>>();
        using var cur = view.GetRowCursor(cols);
        var readers = cols.Select(c => Reader(cur, c)).ToArray();
        while (cur.MoveNext())
        {
            var row = new Dictionary<string, object>(StringComparer.Ordinal);
            for (int i = 0; i < cols.Length; i++)
            {
                object v;
                try { v = readers[i](); }
                catch (Exception ex) { throw new AssertFailedException($"MLNetWorkout({name}) {what}: row {rows.Count}, column '{cols[i].Name}' ({cols[i].Type}) failed: {ex.GetType().Name}: {ex.Message}", ex); }
                if (checkLengths && cols[i].Type is VectorDataViewType { IsKnownSize: true } vt && v is Array arr && arr.Length != vt.Size)
                    throw new AssertFailedException($"MLNetWorkout({name}) {what}: row {rows.Count}, column '{cols[i].Name}' is declared {vt} ({vt.Size} values) but holds {arr.Length}");
                row[cols[i].Name] = v;
            }
            rows.Add(row);
        }
        if (checkLengths && view.GetRowCount() is long n && n != rows.Count)
            throw new AssertFailedException($"MLNetWorkout({name}) {what}: the view says it has {n} rows but a cursor gave {rows.Count}");
        return rows;
    }

    /// <summary>A function that reads <paramref name="col"/> of the current row of <paramref name="row"/> into a copy.</summary>
    private static Func<object> Reader(DataViewRow row, DataViewSchema.Column col)
    {
        switch (col.Type)
        {
            case VectorDataViewType v:
                return (Func<object>)VectorReaderMethod.MakeGenericMethod(v.ItemType.RawType).Invoke(null, [row, col])!;
            case ImageDataViewType:
            {
                var get = row.GetGetter<MLImage>(col);
                MLImage image = null!;
                return () =>
                {
                    get(ref image);
                    return image is null ? "(no image)" : new ImageValue(image.Width, image.Height, image.PixelFormat, image.Pixels.ToArray());
                };
            }
            case TextDataViewType:
            {
                var get = row.GetGetter<ReadOnlyMemory<char>>(col);
                ReadOnlyMemory<char> s = default;
                return () =>
                {
                    get(ref s);
                    return s.ToString();
                };
            }
            default:
                return (Func<object>)ScalarReaderMethod.MakeGenericMethod(col.Type.RawType).Invoke(null, [row, col])!;
        }
    }

    private static readonly MethodInfo VectorReaderMethod = typeof(MLNetWorkout).GetMethod(nameof(VectorReader), BindingFlags.NonPublic | BindingFlags.Static)!;
    private static readonly MethodInfo ScalarReaderMethod = typeof(MLNetWorkout).GetMethod(nameof(ScalarReader), BindingFlags.NonPublic | BindingFlags.Static)!;

    private static Func<object> VectorReader<T>(DataViewRow row, DataViewSchema.Column col)
    {
        var get = row.GetGetter<VBuffer<T>>(col);
        VBuffer<T> buf = default;
        return () =>
        {
            get(ref buf);
            return buf.DenseValues().ToArray();
        };
    }

    private static Func<object> ScalarReader<T>(DataViewRow row, DataViewSchema.Column col)
    {
        var get = row.GetGetter<T>(col);
        T x = default!;
        return () =>
        {
            get(ref x);
            return x!;
        };
    }

    /// <summary>An image cell, copied.</summary>
    private sealed record ImageValue(int Width, int Height, MLPixelFormat Format, byte[] Pixels)
    {
        public bool SameAs(ImageValue o) => Width == o.Width && Height == o.Height && Format == o.Format && Pixels.AsSpan().SequenceEqual(o.Pixels);

        public override string ToString() => $"{Width}×{Height} {Format} image";
    }

    private static void Compare(string name, string what, List<Dictionary<string, object>> expected, List<Dictionary<string, object>> actual,
        IEnumerable<string> columns, double tolerance)
    {
        if (expected.Count != actual.Count)
            throw new AssertFailedException($"MLNetWorkout({name}) {what}: {actual.Count} rows instead of {expected.Count}");
        var names = columns.ToArray();
        for (int r = 0; r < expected.Count; r++)
            foreach (var c in names)
            {
                if (!actual[r].TryGetValue(c, out var a)) throw new AssertFailedException($"MLNetWorkout({name}) {what}: row {r} has no column '{c}'");
                if (!Same(expected[r][c], a, tolerance, out string why))
                    throw new AssertFailedException($"MLNetWorkout({name}) {what}: row {r}, column '{c}': {why}");
            }
    }

    /// <summary>
    /// True when two cell values are the same: float arrays within <paramref name="tolerance"/> (0: bit-identical), other
    /// arrays, text and numbers equal (floating-point numbers bit for bit), images pixel for pixel.
    /// </summary>
    private static bool Same(object e, object a, double tolerance, out string why)
    {
        why = "";
        switch (e, a)
        {
            case (float[] x, float[] y):
                if (x.Length != y.Length) { why = $"{x.Length} values vs {y.Length}"; return false; }
                int first = -1;
                double max = 0;
                for (int i = 0; i < x.Length; i++)
                {
                    bool same = tolerance == 0 ? BitConverter.SingleToInt32Bits(x[i]) == BitConverter.SingleToInt32Bits(y[i]) : Math.Abs((double)x[i] - y[i]) <= tolerance;
                    if (!same && first < 0) first = i;
                    if (!float.IsNaN(x[i]) && !float.IsNaN(y[i])) max = Math.Max(max, Math.Abs((double)x[i] - y[i]));
                }
                if (first < 0) return true;
                why = string.Create(CultureInfo.InvariantCulture,
                    $"values differ{(tolerance == 0 ? " in their bits" : $" by more than {tolerance:G3}")}: first at index {first} ({x[first]:R} vs {y[first]:R}), max |difference| {max:G4}");
                return false;
            case (double[] x, double[] y):
                if (x.Length == y.Length && x.Zip(y).All(z => BitConverter.DoubleToInt64Bits(z.First) == BitConverter.DoubleToInt64Bits(z.Second))) return true;
                why = "double vectors differ";
                return false;
            case (Array x, Array y):
                if (x.Length == y.Length && x.Cast<object>().SequenceEqual(y.Cast<object>())) return true;
                why = $"{x.GetType().GetElementType()!.Name} vectors differ ({x.Length} vs {y.Length} values)";
                return false;
            case (ImageValue x, ImageValue y):
                if (x.SameAs(y)) return true;
                why = $"images differ ({x} vs {y})";
                return false;
            case (float x, float y):
                if (BitConverter.SingleToInt32Bits(x) == BitConverter.SingleToInt32Bits(y) || Math.Abs(x - y) <= tolerance) return true;
                why = $"{x:R} vs {y:R}";
                return false;
            case (double x, double y):
                if (BitConverter.DoubleToInt64Bits(x) == BitConverter.DoubleToInt64Bits(y) || Math.Abs(x - y) <= tolerance) return true;
                why = $"{x:R} vs {y:R}";
                return false;
            default:
                if (Equals(e, a)) return true;
                why = $"{e} vs {a}";
                return false;
        }
    }

    // ---- (e): row by row ----

    /// <summary>The loaded model's row mapper (what a PredictionEngine runs) over a cursor of <paramref name="data"/>.</summary>
    private static List<Dictionary<string, object>> RowMapperValues(ITransformer loaded, IDataView data, DataViewSchema expected)
    {
        var mapper = loaded.GetRowToRowMapper(data.Schema);
        var wanted = Added(data.Schema, expected).Select(n => mapper.OutputSchema[n]).ToArray();
        var rows = new List<Dictionary<string, object>>();
        using var cur = data.GetRowCursor(mapper.GetDependencies(wanted));
        using var row = mapper.GetRow(cur, wanted);
        var readers = wanted.Select(c => Reader(row, c)).ToArray();
        while (cur.MoveNext())
        {
            var values = new Dictionary<string, object>(StringComparer.Ordinal);
            for (int i = 0; i < wanted.Length; i++) values[wanted[i].Name] = readers[i]();
            rows.Add(values);
        }
        return rows;
    }

    /// <summary>A PredictionEngine over the loaded model, one prediction per row, reading every added column.</summary>
    private static List<Dictionary<string, object>> PredictionEngineValues<TInput>(ITransformer loaded, MLContext ml2, IReadOnlyList<TInput> inputs, DataViewSchema expected)
        where TInput : class
    {
        var inputSchema = ml2.Data.LoadFromEnumerable(inputs).Schema;
        var added = Added(inputSchema, expected);
        var definition = PredictionColumns.Definition(added.Select(n => expected[n]).ToArray());
        using var engine = ml2.Model.CreatePredictionEngine<TInput, PredictionColumns>(loaded, ignoreMissingColumns: false, outputSchemaDefinition: definition.Schema);
        var rows = new List<Dictionary<string, object>>();
        foreach (var input in inputs)
        {
            var p = engine.Predict(input);
            rows.Add(definition.Read(p));
        }
        return rows;
    }
}

/// <summary>
/// A PredictionEngine output row able to hold any few columns: <see cref="Definition"/> maps each output column to one
/// member of the right kind (public for ML.NET's code generation; not for use in applications).
/// </summary>
public sealed class PredictionColumns
{
#pragma warning disable CS1591 // members are mapped by Definition
    public float[] F0 = [], F1 = [], F2 = [], F3 = [], F4 = [], F5 = [], F6 = [], F7 = [];
    public long[] L0 = [], L1 = [], L2 = [], L3 = [];
    public string S0 = "", S1 = "", S2 = "", S3 = "";
    public double D0, D1, D2, D3;
#pragma warning restore CS1591

    /// <summary>The schema definition mapping <paramref name="columns"/> to members, and how to read them back.</summary>
    internal static (SchemaDefinition Schema, Func<PredictionColumns, Dictionary<string, object>> Read) Definition(IReadOnlyList<DataViewSchema.Column> columns)
    {
        var all = SchemaDefinition.Create(typeof(PredictionColumns));
        var used = new HashSet<string>(StringComparer.Ordinal);
        var readers = new List<(string Column, FieldInfo Field)>();
        var counters = new Dictionary<char, int>();
        foreach (var c in columns)
        {
            char kind = c.Type switch
            {
                VectorDataViewType v when v.ItemType == NumberDataViewType.Single => 'F',
                VectorDataViewType v when v.ItemType == NumberDataViewType.Int64 => 'L',
                TextDataViewType => 'S',
                NumberDataViewType n when n == NumberDataViewType.Double => 'D',
                _ => throw new AssertFailedException($"MLNetWorkout (e): output column '{c.Name}' of type {c.Type} cannot be read by the workout's PredictionEngine"),
            };
            int k = counters.GetValueOrDefault(kind);
            counters[kind] = k + 1;
            string member = $"{kind}{k}";
            var def = all.FirstOrDefault(d => d.MemberName == member)
                ?? throw new AssertFailedException($"MLNetWorkout (e): more than {k} output columns of kind {kind}");
            def.ColumnName = c.Name;
            def.ColumnType = c.Type;
            used.Add(member);
            readers.Add((c.Name, typeof(PredictionColumns).GetField(member)!));
        }
        all.RemoveAll(d => !used.Contains(d.MemberName));
        return (all, p =>
        {
            var d = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (var (col, f) in readers)
            {
                var v = f.GetValue(p)!;
                d[col] = v is Array a ? a.Clone() : v;
            }
            return d;
        });
    }
}
