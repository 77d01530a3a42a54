using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>Applies several augmentations in order (each with its own draws from the shared generator).</summary>
public sealed class Compose : IBatchAugmentation
{
    private readonly IBatchAugmentation[] _steps;

    /// <summary>Creates the composition; an empty list behaves as <see cref="NoAugmentation"/>.</summary>
    public Compose(params IBatchAugmentation[] steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        for (int i = 0; i < steps.Length; i++)
            if (steps[i] is null) throw new ArgumentNullException(nameof(steps), $"Compose: step {i} is null");
        _steps = (IBatchAugmentation[])steps.Clone();
    }

    /// <summary>The steps, in application order.</summary>
    public IReadOnlyList<IBatchAugmentation> Steps => _steps;

    /// <inheritdoc/>
    public string Name => _steps.Length == 0 ? "none" : string.Join("+", _steps.Select(s => s.Name));

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        BatchAug.Check(images, masks, generator, nameof(Compose));
        using var scope = torch.NewDisposeScope();
        Tensor img = images.clone(), msk = masks.clone();
        foreach (var step in _steps)
        {
            var (ni, nm) = step.Apply(img, msk, generator);
            img.Dispose();
            msk.Dispose();
            (img, msk) = (ni, nm);
        }
        return BatchAug.Out(img, msk);
    }
}

/// <summary>The identity augmentation ("No Aug." in DASP Table 1): returns copies of the inputs.</summary>
public sealed class NoAugmentation : IBatchAugmentation
{
    /// <summary>The shared instance.</summary>
    public static NoAugmentation Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "none";

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        BatchAug.Check(images, masks, generator, nameof(NoAugmentation));
        using var scope = torch.NewDisposeScope();
        return BatchAug.Out(images.clone(), masks.clone());
    }
}
