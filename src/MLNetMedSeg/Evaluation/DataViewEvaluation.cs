using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Evaluation;

/// <summary>The evaluator over the engine's data views (behind <c>ml.MedSeg().Evaluate</c>).</summary>
internal static class DataViewEvaluation
{
    /// <summary>
    /// Evaluates binary segmentation: <paramref name="labelColumn"/> float32 [1,H,W] {0,1} ground truth against
    /// <paramref name="predictionColumn"/> float32 [1,H,W] probabilities, foreground where ≥
    /// <see cref="EvaluationOptions.Threshold"/> (default 0.5). Rows are named by the Id column when present.
    /// The schema is checked first (a <see cref="SchemaException"/> names a missing or wrongly typed column).
    /// </summary>
    public static EvaluationResult EvaluateBinary(MedSegContext context, IDataView data, string labelColumn = "Mask",
        string predictionColumn = "Probability", EvaluationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        const string consumer = "EvaluateBinary";
        var ev = SegmentationEvaluator.Binary(options);
        var label = CheckLabelColumn(data.Schema, labelColumn, true, consumer);
        var pred = CheckPredictionColumn(data.Schema, predictionColumn, true, 2, consumer);
        var id = CheckIdColumn(data.Schema, ev.Options.IdColumn, consumer);
        return Run(context, data, ev, label, pred, id, consumer);
    }

    /// <summary>
    /// Evaluates multi-class segmentation with <paramref name="numClasses"/> classes, background 0 included:
    /// <paramref name="labelColumn"/> int64 [H,W] class indices against <paramref name="predictionColumn"/>, either
    /// int64 [H,W] class indices or float32 [numClasses,H,W] scores (argmax). Per-class metrics are for classes
    /// 1..numClasses−1, or 0..numClasses−1 with <see cref="EvaluationOptions.IncludeBackground"/>.
    /// </summary>
    public static EvaluationResult EvaluateMultiClass(MedSegContext context, IDataView data, int numClasses,
        string labelColumn = "Mask", string predictionColumn = "Probability", EvaluationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        const string consumer = "EvaluateMultiClass";
        var ev = SegmentationEvaluator.MultiClass(numClasses, options);
        var label = CheckLabelColumn(data.Schema, labelColumn, false, consumer);
        var pred = CheckPredictionColumn(data.Schema, predictionColumn, false, numClasses, consumer);
        var id = CheckIdColumn(data.Schema, ev.Options.IdColumn, consumer);
        return Run(context, data, ev, label, pred, id, consumer);
    }

    internal static DataViewSchema.Column CheckLabelColumn(DataViewSchema schema, string name, bool binary, string consumer)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return schema.RequireTensor(name, binary ? TensorColumnType.BinaryMask() : TensorColumnType.ClassMask(), consumer);
    }

    internal static DataViewSchema.Column CheckPredictionColumn(DataViewSchema schema, string name, bool binary, int numClasses, string consumer)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (binary) return schema.RequireTensor(name, TensorColumnType.BinaryMask(), consumer);
        var c = schema.GetColumnOrNull(name);
        if (c is null) return schema.RequireTensor(name, TensorColumnType.ClassMask(), consumer); // throws: missing
        var scores = new TensorColumnType(ScalarType.Float32, [numClasses, -1, -1]);
        if (c.Type is TensorColumnType t && (TensorColumnType.ClassMask().IsAssignableFrom(t) || IsCompatible(scores, t)))
            return c;
        throw new SchemaException(
            $"{consumer}: column '{name}' has type {c.Type} but {TensorColumnType.ClassMask()} (class indices) or {scores} (scores) is required", name);
    }

    private static bool IsCompatible(TensorColumnType expected, TensorColumnType actual) =>
        expected.DType == actual.DType && expected.Shape.Length == actual.Shape.Length &&
        expected.Shape.Zip(actual.Shape).All(d => d.First < 0 || d.Second < 0 || d.First == d.Second);

    internal static DataViewSchema.Column? CheckIdColumn(DataViewSchema schema, string name, string consumer) =>
        schema.Contains(name) ? schema.Require(name, TextColumnType.Instance, consumer) : null;

    private static EvaluationResult Run(MedSegContext context, IDataView data, SegmentationEvaluator ev,
        DataViewSchema.Column label, DataViewSchema.Column pred, DataViewSchema.Column? id, string consumer)
    {
        ev.LabelColumn = label.Name;
        ev.PredictionColumn = pred.Name;
        var cols = new List<DataViewSchema.Column> { label, pred };
        if (id is not null) cols.Add(id);
        int batchSize = ev.Options.BatchSize;
        var preds = new List<Tensor>();
        var labels = new List<Tensor>();
        var ids = new List<string>();
        try
        {
            using var cursor = data.GetRowCursor(cols);
            long row = -1;
            while (cursor.MoveNext())
            {
                row++;
                string rowId = id is null ? row.ToString(System.Globalization.CultureInfo.InvariantCulture) : cursor.GetText(id.Name);
                var p = cursor.GetTensor(pred.Name);
                var t = cursor.GetTensor(label.Name);
                long[] ps = p.shape, ts = t.shape;
                if (ps[^1] != ts[^1] || ps[^2] != ts[^2])
                    throw new ArgumentException(
                        $"{consumer}: row '{rowId}': column '{pred.Name}' is [{string.Join(",", ps)}] but column '{label.Name}' is [{string.Join(",", ts)}] (sizes differ)");
                if (preds.Count > 0 && (!preds[0].shape.SequenceEqual(ps) || !labels[0].shape.SequenceEqual(ts) || preds[0].device != p.device))
                    Flush(ev, preds, labels, ids);
                // The cursor frees its row tensors on MoveNext: keep aliases (they share the storage) until the flush.
                preds.Add(p.alias().DetachFromDisposeScope());
                labels.Add(t.alias().DetachFromDisposeScope());
                ids.Add(rowId);
                if (preds.Count >= batchSize) Flush(ev, preds, labels, ids);
            }
            Flush(ev, preds, labels, ids);
        }
        finally
        {
            foreach (var t in preds) t.Dispose();
            foreach (var t in labels) t.Dispose();
        }
        var result = ev.GetResult();
        var dropped = result.Dropped.Where(kv => kv.Value > 0).Select(kv => $"{EvaluationResult.MetricName(kv.Key)} {kv.Value}").ToList();
        context.WriteLog(LogLevel.Info, consumer,
            $"{result.ImageCount} images: mIoU {result.MeanIoU:F4}, mDice {result.MeanDice:F4}" +
            (dropped.Count > 0 ? $"; dropped from per-image means: {string.Join(", ", dropped)}" : ""));
        return result;
    }

    private static void Flush(SegmentationEvaluator ev, List<Tensor> preds, List<Tensor> labels, List<string> ids)
    {
        if (preds.Count == 0) return;
        try
        {
            using var scope = torch.NewDisposeScope();
            // Binary [1,H,W] rows stack to [N,1,H,W]; class masks [H,W] to [N,H,W]; scores [C,H,W] to [N,C,H,W].
            ev.Add(torch.stack(preds, 0), torch.stack(labels, 0), ids.ToArray());
        }
        finally
        {
            foreach (var t in preds) t.Dispose();
            foreach (var t in labels) t.Dispose();
            preds.Clear();
            labels.Clear();
            ids.Clear();
        }
    }
}
