using Microsoft.ML.Data;
using MLNetMedSeg.Data;
using MLDataView = Microsoft.ML.IDataView;
using MLSchema = Microsoft.ML.DataViewSchema;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>ML.NET data views as the library's stages read them.</summary>
public static class MLNetData
{
    /// <summary>
    /// The columns of <paramref name="input"/> the library can read, converted lazily (<see cref="TensorColumns"/>).
    /// Training shuffles every epoch: data that cannot be shuffled (a streaming loader) is read once into memory — a
    /// <see cref="CachedDataView"/> that the caller disposes (or use <see cref="Fit"/>, which does).
    /// </summary>
    internal static Data.IDataView ForTraining(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var view = new MLNetInputView(input);
        return view.CanShuffle ? view : CachedDataView.Create(view);
    }

    /// <summary>
    /// An estimator's ML.NET Fit: <paramref name="schemaCheck"/> (the stage's GetOutputSchema) first judges the input's
    /// columns — a missing, wrongly typed or unreadable column is a <see cref="SchemaException"/> naming it, before any row
    /// is read — then <paramref name="fit"/> trains on the data as <see cref="ForTraining"/> gives it (shuffleable),
    /// and the in-memory copy made for data that cannot be shuffled is disposed afterwards.
    /// </summary>
    internal static T Fit<T>(MLDataView input, Func<Data.DataViewSchema, Data.DataViewSchema> schemaCheck, Func<Data.IDataView, T> fit)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(schemaCheck);
        ArgumentNullException.ThrowIfNull(fit);
        CheckSchema(input.Schema, schemaCheck);
        var data = ForTraining(input);
        try
        {
            return fit(data);
        }
        finally
        {
            (data as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// Runs a stage's schema check on the library's view of <paramref name="schema"/>; a column the ML.NET data has but
    /// the library cannot read is named as such in the <see cref="SchemaException"/>.
    /// </summary>
    internal static Data.DataViewSchema CheckSchema(Microsoft.ML.DataViewSchema schema, Func<Data.DataViewSchema, Data.DataViewSchema> schemaCheck)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(schemaCheck);
        var inner = new MLNetInputView.SchemaOnly(schema).Schema;
        return ExplainUnreadable(() => schemaCheck(inner), name => UnreadableType(schema, inner, name));
    }

    /// <summary>The columns of <paramref name="input"/> the library can read, converted lazily, in the input's order.</summary>
    internal static Data.IDataView AsLibraryView(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MLNetInputView(input);
    }

    /// <summary>
    /// The ML.NET type of column <paramref name="name"/> of <paramref name="schema"/> when it is there (visible) but the
    /// library cannot read it (absent from <paramref name="inner"/>, the library's view), else null.
    /// </summary>
    internal static string? UnreadableType(MLSchema schema, Data.DataViewSchema inner, string name)
    {
        if (inner.GetColumnOrNull(name) is not null) return null;
        var c = schema.GetColumnOrNull(name);
        return c is { IsHidden: false } col ? col.Type.ToString() : null;
    }

    /// <summary>
    /// Runs a stage's schema check; a "column not found" error about a column that IS in the ML.NET data, as a type
    /// the library cannot read (<paramref name="unreadableType"/> gives its description, or null), becomes a
    /// <see cref="SchemaException"/> saying so and what the library reads instead.
    /// </summary>
    internal static T ExplainUnreadable<T>(Func<T> check, Func<string, string?> unreadableType)
    {
        try
        {
            return check();
        }
        catch (SchemaException e) when (unreadableType(e.ColumnName) is { } type)
        {
            throw new SchemaException(
                $"column '{e.ColumnName}' has the ML.NET type {type}, which MLNetMedSeg's stages cannot read. They read images as " +
                "MLImage (LoadImages/ResizeImages) or float vectors with dimensions [C,H,W]; masks as float vectors [1,H,W] or [H,W], or " +
                "integer vectors [H,W]; a float vector must carry its dimensions (e.g. [VectorType(3, H, W)] on a float[] member, or " +
                $"ExtractPixels without interleaving — see TensorColumns). The stage said: {e.Message}",
                e.ColumnName, e);
        }
    }
}
