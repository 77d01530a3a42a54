namespace MLNetMedSeg.Pipeline;

/// <summary>One registered loader: the signature it reads, the newest format version it understands, and the function.</summary>
/// <param name="Signature">The signature written by the transformer's Save (e.g. "MEDSEG.CHAIN").</param>
/// <param name="CurrentVersion">The newest format version this loader reads; entries whose oldest readable version is newer are refused.</param>
/// <param name="Load">Rebuilds the transformer from its entry.</param>
public sealed record ModelLoader(string Signature, int CurrentVersion, Func<ModelLoadContext, ITransformer> Load);

/// <summary>
/// Maps an entry's signature to the loader that rebuilds it. Loaders are registered explicitly: the library's own
/// through <c>MLNetMedSeg.BuiltInModelLoaders</c> (registered when the assembly loads), an application's through <see cref="Register"/> (e.g. in a static
/// constructor of its transformer or at start-up). Thread-safe.
/// </summary>
public static class ModelLoaderRegistry
{
    private static readonly object Lock = new();
    private static readonly Dictionary<string, ModelLoader> Loaders = new(StringComparer.Ordinal);

    /// <summary>
    /// Registers <paramref name="load"/> for entries written with <paramref name="signature"/>. Registering the same
    /// signature again with the same version and function is a no-op; with a different one it throws.
    /// </summary>
    /// <param name="signature">The signature the transformer passes to <see cref="ModelSaveContext.WriteHeader"/>.</param>
    /// <param name="currentVersion">The newest format version the loader reads (≥ 1).</param>
    /// <param name="load">Rebuilds the transformer from its entry.</param>
    /// <exception cref="InvalidOperationException">Another loader is registered for <paramref name="signature"/>.</exception>
    public static void Register(string signature, int currentVersion, Func<ModelLoadContext, ITransformer> load)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(signature);
        ArgumentNullException.ThrowIfNull(load);
        ArgumentOutOfRangeException.ThrowIfLessThan(currentVersion, 1);
        Add(new ModelLoader(signature, currentVersion, load));
    }

    /// <summary>Registers <paramref name="loaders"/> (the library's own, when its assembly loads).</summary>
    internal static void RegisterAll(IEnumerable<ModelLoader> loaders)
    {
        foreach (var l in loaders) Add(l);
    }

    private static void Add(ModelLoader loader)
    {
        lock (Lock)
        {
            if (Loaders.TryGetValue(loader.Signature, out var existing))
            {
                if (existing.CurrentVersion == loader.CurrentVersion && existing.Load.Equals(loader.Load)) return;
                throw new InvalidOperationException(
                    $"a different loader is already registered for signature '{loader.Signature}' ({existing.Load.Method.DeclaringType?.FullName}.{existing.Load.Method.Name}, version {existing.CurrentVersion})");
            }
            Loaders.Add(loader.Signature, loader);
        }
    }

    /// <summary>The loader registered for <paramref name="signature"/>, or null.</summary>
    public static ModelLoader? Find(string signature)
    {
        lock (Lock) return Loaders.GetValueOrDefault(signature);
    }

    /// <summary>True if a loader is registered for <paramref name="signature"/>.</summary>
    public static bool IsRegistered(string signature) => Find(signature) is not null;

    /// <summary>The registered signatures, sorted.</summary>
    public static IReadOnlyList<string> Signatures
    {
        get
        {
            lock (Lock) return Loaders.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        }
    }
}
