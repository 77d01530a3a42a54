namespace MLNetMedSeg.Data.Transforms;

/// <summary>
/// Base of the stages that read one file per row from a text column of paths (<see cref="LoadImageTransformer"/>,
/// <see cref="LoadMaskTransformer"/>): the schema check, the lazy mapped column and the path resolution live here; a
/// subclass decodes one file.
/// </summary>
public abstract class FileLoadingTransformer : Core.MLNet.StageTransformer
{
    private readonly string _stage, _what;

    /// <param name="stage">The stage's name in errors (e.g. "LoadMasks").</param>
    /// <param name="what">What a file holds, in errors (e.g. "mask").</param>
    private protected FileLoadingTransformer(string stage, string what)
    {
        _stage = stage;
        _what = what;
    }

    /// <summary>The text column of file paths.</summary>
    protected abstract string InputColumnName { get; }

    /// <summary>The tensor column written.</summary>
    protected abstract string OutputColumnName { get; }

    /// <summary>Folder that relative paths are resolved against (null: the current directory).</summary>
    protected abstract string? Folder { get; }

    /// <summary>The type of the values written.</summary>
    private protected abstract TensorColumnType OutputType { get; }

    /// <summary>Decodes the file at <paramref name="fullPath"/> into a value of <see cref="OutputType"/>.</summary>
    protected abstract Tensor ReadFile(string fullPath);

    internal sealed override DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        inputSchema.Require(InputColumnName, TextColumnType.Instance, _stage);
        return new DataViewSchema.Builder(inputSchema).AddColumn(OutputColumnName, OutputType).ToSchema();
    }

    internal sealed override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        string src = InputColumnName;
        return new MappedDataView(input, [new MappedColumn(OutputColumnName, OutputType, [src], cur => Read(cur.GetText(src)))]);
    }

    /// <summary>Reads one file as this stage would (a relative path is resolved against the stage's folder).</summary>
    public Tensor Read(string path)
    {
        if (string.IsNullOrEmpty(path)) throw new InvalidDataException($"{_stage}: a row of column '{InputColumnName}' has no {_what} path");
        return ReadFile(Folder is { } folder && !Path.IsPathRooted(path) ? Path.Combine(folder, path) : path);
    }
}
