using System.Collections;
using MLNetMedSeg.Data;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// A sequence of estimators fitted stage by stage, as ML.NET's EstimatorChain: each stage is fitted on the data as
/// transformed by the stages before it (those whose scope includes <see cref="TransformerScope.Training"/>).
/// Built with <see cref="ChainExtensions.Append{TNew}(IEstimator{ITransformer}, IEstimator{TNew}, TransformerScope)"/>.
/// Immutable: <see cref="Append{TNew}"/> returns a new chain.
/// </summary>
/// <typeparam name="TLast">The type of the last stage's transformer.</typeparam>
public sealed class EstimatorChain<TLast> : IEstimator<TransformerChain<TLast>> where TLast : class, ITransformer
{
    private readonly (IEstimator<ITransformer> Estimator, TransformerScope Scope)[] _stages;

    /// <summary>An empty chain (Fit returns an empty transformer chain).</summary>
    public EstimatorChain() => _stages = [];

    private EstimatorChain((IEstimator<ITransformer>, TransformerScope)[] stages) => _stages = stages;

    /// <summary>
    /// The stages and their scopes. <see cref="TransformerScope.None"/> means "decided after fitting": the fitted
    /// transformer's <see cref="IScopedTransformer.DefaultScope"/>, else <see cref="TransformerScope.Everything"/>.
    /// </summary>
    public IReadOnlyList<(IEstimator<ITransformer> Estimator, TransformerScope Scope)> Stages => _stages;

    /// <summary>A new chain with <paramref name="next"/> appended.</summary>
    /// <param name="next">The next stage.</param>
    /// <param name="scope">When its transformer applies; default (<see cref="TransformerScope.None"/>): the transformer's own default scope.</param>
    public EstimatorChain<TNew> Append<TNew>(IEstimator<TNew> next, TransformerScope scope = default) where TNew : class, ITransformer
    {
        ArgumentNullException.ThrowIfNull(next);
        return new EstimatorChain<TNew>([.. _stages, ((IEstimator<ITransformer>)next, scope)]);
    }

    /// <summary>
    /// Propagates <paramref name="inputSchema"/> through every stage's <see cref="IEstimator{T}.GetOutputSchema"/>;
    /// a stage that needs a missing or wrongly-typed column throws a <see cref="SchemaException"/> naming the
    /// column and the stage. Nothing is trained.
    /// </summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var s = inputSchema;
        for (int i = 0; i < _stages.Length; i++)
            s = StageSchema(i, _stages[i].Estimator, s);
        return s;
    }

    private static DataViewSchema StageSchema(int i, IEstimator<ITransformer> estimator, DataViewSchema s)
    {
        try
        {
            return estimator.GetOutputSchema(s) ?? throw new InvalidOperationException($"stage {i} ({estimator.GetType().Name}) returned no output schema");
        }
        catch (SchemaException ex)
        {
            throw new SchemaException($"chain stage {i} ({estimator.GetType().Name}): {ex.Message}", ex.ColumnName);
        }
    }

    /// <summary>
    /// Checks the whole chain's schema first (no stage is fitted if any stage would fail), then fits stage by stage:
    /// each fitted transformer whose scope includes <see cref="TransformerScope.Training"/> transforms the data passed
    /// to the next stage. <paramref name="cancellationToken"/> is checked before every stage and passed to each Fit.
    /// </summary>
    public TransformerChain<TLast> Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        var fitted = new List<(ITransformer, TransformerScope)>(_stages.Length);
        try
        {
            IDataView current = input;
            for (int i = 0; i < _stages.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (est, scope) = _stages[i];
                var xf = est.Fit(current, cancellationToken)
                    ?? throw new InvalidOperationException($"chain stage {i} ({est.GetType().Name}) returned no transformer");
                var resolved = ChainExtensions.ResolveScope(xf, scope);
                fitted.Add((xf, resolved));
                if (i < _stages.Length - 1 && (resolved & TransformerScope.Training) != 0)
                    current = xf.Transform(current);
            }
            cancellationToken.ThrowIfCancellationRequested();
            return new TransformerChain<TLast>(fitted);
        }
        catch
        {
            foreach (var (xf, _) in fitted) (xf as IDisposable)?.Dispose();
            throw;
        }
    }
}

/// <summary>
/// Fitted transformers applied in order, each with a <see cref="TransformerScope"/>, as ML.NET's TransformerChain.
/// <see cref="Transform"/> applies the transformers whose scope includes <see cref="TransformerScope.Scoring"/>
/// (training-only augmenters are skipped); <see cref="GetModelFor"/> selects another scope. Disposing the chain
/// disposes its transformers. Saved as signature <see cref="TransformerChain.LoaderSignature"/> with one child per stage.
/// </summary>
/// <typeparam name="TLast">The type of the last transformer.</typeparam>
public sealed class TransformerChain<TLast> : ITransformer, IDisposable, IReadOnlyList<(ITransformer Transformer, TransformerScope Scope)>
    where TLast : class, ITransformer
{
    private readonly (ITransformer Transformer, TransformerScope Scope)[] _items;
    private bool _disposed;

    /// <summary>A chain of transformers with explicit scopes (<see cref="TransformerScope.None"/>: the transformer's default scope).</summary>
    /// <param name="transformers">The transformers in order, with their scopes.</param>
    /// <param name="appliesIn">Which transformers <see cref="Transform"/> applies: those whose scope intersects this (default Scoring).</param>
    public TransformerChain(IEnumerable<(ITransformer Transformer, TransformerScope Scope)> transformers, TransformerScope appliesIn = TransformerScope.Scoring)
    {
        ArgumentNullException.ThrowIfNull(transformers);
        if (appliesIn == TransformerScope.None || (appliesIn & ~TransformerScope.Everything) != 0)
            throw new ArgumentOutOfRangeException(nameof(appliesIn), appliesIn, "must be a non-empty combination of Training, Testing and Scoring");
        AppliesIn = appliesIn;
        _items = transformers.Select((t, i) =>
        {
            if (t.Transformer is null) throw new ArgumentException($"transformer {i} is null", nameof(transformers));
            return (t.Transformer, ChainExtensions.ResolveScope(t.Transformer, t.Scope));
        }).ToArray();
        if (_items.Length > 0 && _items[^1].Transformer is not TLast)
            throw new ArgumentException($"the last transformer is a {_items[^1].Transformer.GetType().Name}, not a {typeof(TLast).Name}", nameof(transformers));
    }

    /// <summary>A chain of transformers, each with its default scope.</summary>
    public TransformerChain(params ITransformer[] transformers) : this(transformers.Select(t => (t, TransformerScope.None))) { }

    /// <summary>
    /// The scope this chain transforms for: <see cref="Transform"/> applies the transformers whose scope intersects it.
    /// <see cref="TransformerScope.Scoring"/> for fitted pipelines; <see cref="GetModelFor"/> sets it to its argument.
    /// </summary>
    public TransformerScope AppliesIn { get; }

    /// <summary>The last transformer (e.g. the trained model); throws on an empty chain.</summary>
    public TLast LastTransformer => _items.Length == 0
        ? throw new InvalidOperationException("the chain is empty")
        : (TLast)_items[^1].Transformer;

    public int Count => _items.Length;

    public (ITransformer Transformer, TransformerScope Scope) this[int index] => _items[index];

    public IEnumerator<(ITransformer Transformer, TransformerScope Scope)> GetEnumerator() => ((IEnumerable<(ITransformer, TransformerScope)>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The schema <see cref="Transform"/> produces: propagated through the transformers that apply in <see cref="AppliesIn"/>.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var s = inputSchema;
        for (int i = 0; i < _items.Length; i++)
        {
            var (xf, scope) = _items[i];
            if ((scope & AppliesIn) == 0) continue;
            try { s = xf.GetOutputSchema(s); }
            catch (SchemaException ex) { throw new SchemaException($"chain stage {i} ({xf.GetType().Name}): {ex.Message}", ex.ColumnName); }
        }
        return s;
    }

    /// <summary>
    /// Applies, in order and after checking the schema, the transformers whose scope intersects <see cref="AppliesIn"/>
    /// (for a fitted pipeline: those whose scope includes <see cref="TransformerScope.Scoring"/>).
    /// </summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        GetOutputSchema(input.Schema);
        var dv = input;
        foreach (var (xf, scope) in _items)
            if ((scope & AppliesIn) != 0) dv = xf.Transform(dv);
        return dv;
    }

    /// <summary>
    /// The model for <paramref name="scope"/>: a chain of the transformers whose scope intersects it, whose
    /// <see cref="Transform"/> applies all of them (e.g. <c>GetModelFor(Training)</c> includes the augmenters). The
    /// transformers are shared with this chain: dispose only one of the two.
    /// </summary>
    public TransformerChain<ITransformer> GetModelFor(TransformerScope scope)
    {
        if (scope == TransformerScope.None || (scope & ~TransformerScope.Everything) != 0)
            throw new ArgumentOutOfRangeException(nameof(scope), scope, "must be a non-empty combination of Training, Testing and Scoring");
        return new(_items.Where(t => (t.Scope & scope) != 0), scope);
    }

    /// <summary>Writes the chain: its stage list (child names and scopes) as options and each transformer as a child entry.</summary>
    public void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(TransformerChain.LoaderSignature, TransformerChain.CurrentVersion, 1);
        var options = new TransformerChain.ChainOptions
        {
            AppliesIn = AppliesIn,
            Stages = _items.Select((t, i) => new TransformerChain.StageInfo { Name = TransformerChain.ChildName(i), Scope = t.Scope }).ToList(),
        };
        context.WriteOptions(options);
        for (int i = 0; i < _items.Length; i++)
            context.WriteChild(TransformerChain.ChildName(i), _items[i].Transformer);
    }

    /// <summary>Disposes every transformer that is <see cref="IDisposable"/>.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (xf, _) in _items) (xf as IDisposable)?.Dispose();
    }
}

/// <summary>The model-file loader of <see cref="TransformerChain{TLast}"/>.</summary>
public static class TransformerChain
{
    /// <summary>The signature chains are saved under.</summary>
    public const string LoaderSignature = "MEDSEG.CHAIN";

    /// <summary>The format version written and read.</summary>
    public const int CurrentVersion = 1;

    internal static string ChildName(int i) => $"stage_{i:D3}";

    /// <summary>The stage list saved as the chain's options.</summary>
    public sealed class ChainOptions
    {
        public List<StageInfo> Stages { get; set; } = [];

        /// <summary>See <see cref="TransformerChain{TLast}.AppliesIn"/>.</summary>
        public TransformerScope AppliesIn { get; set; } = TransformerScope.Scoring;
    }

    /// <summary>One stage: its child entry name and scope.</summary>
    public sealed class StageInfo
    {
        public string Name { get; set; } = "";
        public TransformerScope Scope { get; set; }
    }

    /// <summary>Reads a chain written by <see cref="TransformerChain{TLast}.Save"/>.</summary>
    public static TransformerChain<ITransformer> Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<ChainOptions>();
        var items = new List<(ITransformer, TransformerScope)>();
        try
        {
            foreach (var stage in options.Stages ?? [])
            {
                if (stage is null || string.IsNullOrEmpty(stage.Name))
                    throw new InvalidDataException($"chain entry '{context.Signature}': a stage has no name");
                if ((stage.Scope & ~TransformerScope.Everything) != 0 || stage.Scope == TransformerScope.None)
                    throw new InvalidDataException($"chain stage '{stage.Name}': invalid scope {(int)stage.Scope}");
                items.Add((context.ReadChild(stage.Name), stage.Scope));
            }
            if (options.AppliesIn == TransformerScope.None || (options.AppliesIn & ~TransformerScope.Everything) != 0)
                throw new InvalidDataException($"chain: invalid appliesIn {(int)options.AppliesIn}");
            return new TransformerChain<ITransformer>(items, options.AppliesIn);
        }
        catch
        {
            foreach (var (xf, _) in items) (xf as IDisposable)?.Dispose();
            throw;
        }
    }
}

/// <summary>Composition helpers: <c>estimator.Append(next)</c> as in ML.NET.</summary>
public static class ChainExtensions
{
    /// <summary>
    /// A chain of <paramref name="start"/> followed by <paramref name="next"/>. (On an <see cref="EstimatorChain{TLast}"/>
    /// the chain's own Append is used and stages are flattened.)
    /// </summary>
    /// <param name="start">The first stage.</param>
    /// <param name="next">The stage fitted on <paramref name="start"/>'s output.</param>
    /// <param name="scope">When <paramref name="next"/>'s transformer applies; default: its <see cref="IScopedTransformer.DefaultScope"/>, else Everything.</param>
    public static EstimatorChain<TNew> Append<TNew>(this IEstimator<ITransformer> start, IEstimator<TNew> next, TransformerScope scope = default)
        where TNew : class, ITransformer
    {
        ArgumentNullException.ThrowIfNull(start);
        return new EstimatorChain<ITransformer>().Append(start).Append(next, scope);
    }

    /// <summary>
    /// A transformer chain of <paramref name="start"/> followed by <paramref name="next"/> (each with its default
    /// scope unless given). The new chain owns both: disposing it disposes them (a chain given as
    /// <paramref name="start"/> becomes one nested stage).
    /// </summary>
    public static TransformerChain<TNew> Append<TNew>(this ITransformer start, TNew next, TransformerScope scope = default)
        where TNew : class, ITransformer
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(next);
        return new TransformerChain<TNew>([(start, TransformerScope.None), (next, scope)]);
    }

    /// <summary>
    /// The scope a transformer gets in a chain: <paramref name="requested"/> when given, else the transformer's
    /// <see cref="IScopedTransformer.DefaultScope"/>, else <see cref="TransformerScope.Everything"/>.
    /// </summary>
    public static TransformerScope ResolveScope(ITransformer transformer, TransformerScope requested) =>
        requested != TransformerScope.None ? requested
        : transformer is IScopedTransformer s && s.DefaultScope != TransformerScope.None ? s.DefaultScope
        : TransformerScope.Everything;
}
