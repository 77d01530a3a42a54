using Microsoft.ML;
using Microsoft.ML.Data;
using MLDataView = Microsoft.ML.IDataView;
using MLSchema = Microsoft.ML.DataViewSchema;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>
/// Base of the library's fitted stages: an ML.NET <see cref="ITransformer"/> (over <see cref="MLDataView"/>, saved by
/// <c>ml.Model.Save</c>, loaded by <c>ml.Model.Load</c>, run by a <c>PredictionEngine</c>). A subclass implements the
/// engine's side (internal: the stage over the engine's tensor views, and its model entry); this class maps it to ML.NET:
/// <list type="bullet">
/// <item><see cref="GetOutputSchema(MLSchema)"/>: the input's columns pass through, the stage's columns follow as
/// <c>VectorDataViewType(Single, C, H, W)</c> (checks the input first; a missing or wrongly typed column is an error
/// naming it).</item>
/// <item><see cref="Transform(MLDataView)"/>: lazy; the stage runs in its own batches when a cursor asks for one of
/// its columns.</item>
/// <item><see cref="GetRowToRowMapper"/>: one row at a time (what <c>PredictionEngine</c> uses).</item>
/// <item><see cref="ICanSaveModel.Save"/>: the stage's entry into ML.NET's zip (options as
/// JSON, weights as safetensors; see <see cref="ModelFiles"/>). Each subclass also has a static
/// <c>Create(IHostEnvironment, ModelLoadContext)</c> and a line in <c>LoadableStages.cs</c>.</item>
/// </list>
/// </summary>
public abstract class StageTransformer : ITransformer, ICanSaveModel, Pipeline.ITransformer
{
    // The engine's side (internal): the same stage over the engine's tensor data views, and its model entry.
    internal abstract Data.DataViewSchema GetOutputSchema(Data.DataViewSchema inputSchema);

    internal abstract Data.IDataView Transform(Data.IDataView input);

    internal abstract void Save(Pipeline.ModelSaveContext context);

    Data.DataViewSchema Pipeline.ITransformer.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    Data.IDataView Pipeline.ITransformer.Transform(Data.IDataView input) => Transform(input);

    void Pipeline.ITransformer.Save(Pipeline.ModelSaveContext context) => Save(context);

    /// <summary>
    /// Output rows per input row: 1 for row-to-row stages; k for stages that draw k samples per row (output row
    /// r·k + j repeats input row r's columns).
    /// </summary>
    public virtual int OutputRowsPerInputRow => 1;

    /// <summary>True when every input row gives exactly one output row (what <c>PredictionEngine</c> needs).</summary>
    public bool IsRowToRowMapper => OutputRowsPerInputRow == 1;

    /// <summary>The ML.NET output schema; throws naming a missing or wrongly typed input column.</summary>
    public virtual MLSchema GetOutputSchema(MLSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return StageSchema.Of(this, inputSchema).Output;
    }

    /// <summary>Applies the stage to an ML.NET data view, lazily (the input's columns pass through).</summary>
    public virtual MLDataView Transform(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MLNetOutputView(input, this);
    }

    /// <summary>The stage as a row mapper over <paramref name="inputSchema"/> (for <c>PredictionEngine</c>).</summary>
    public virtual IRowToRowMapper GetRowToRowMapper(MLSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (!IsRowToRowMapper) throw new InvalidOperationException($"{GetType().Name} is not a row-to-row stage");
        return new MLNetRowMapper(this, inputSchema);
    }

    void ICanSaveModel.Save(ModelSaveContext ctx) => ModelFiles.Save(this, ctx);

    /// <summary>A row mapper that passes every column through (for stages that change nothing ML.NET sees).</summary>
    protected static IRowToRowMapper IdentityMapper(MLSchema inputSchema) => new IdentityRowMapper(inputSchema);

    private sealed class IdentityRowMapper(MLSchema schema) : IRowToRowMapper
    {
        public MLSchema InputSchema => schema;
        public MLSchema OutputSchema => schema;
        public IEnumerable<MLSchema.Column> GetDependencies(IEnumerable<MLSchema.Column> dependingColumns) => dependingColumns;
        public DataViewRow GetRow(DataViewRow input, IEnumerable<MLSchema.Column> activeColumns) => new Row(input);

        private sealed class Row(DataViewRow input) : DataViewRow
        {
            public override MLSchema Schema => input.Schema;
            public override long Position => input.Position;
            public override long Batch => input.Batch;
            public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
            public override bool IsColumnActive(MLSchema.Column column) => input.IsColumnActive(column);
            public override ValueGetter<TValue> GetGetter<TValue>(MLSchema.Column column) => input.GetGetter<TValue>(column);
        }
    }
}
