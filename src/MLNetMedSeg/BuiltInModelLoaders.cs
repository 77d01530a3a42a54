using System.Runtime.CompilerServices;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg;

/// <summary>
/// The loaders of the library's own transformers. Adding a stage is one line here:
/// <c>new(XxxTransformer.LoaderSignature, XxxTransformer.CurrentVersion, XxxTransformer.Load),</c>
/// (each transformer exposes <c>public const string LoaderSignature</c> and <c>public static XxxTransformer Load(ModelLoadContext)</c>).
/// They are registered in <see cref="ModelLoaderRegistry"/> when this assembly loads (a module initializer, so that
/// <c>Pipeline</c> needs no reference to the stages that depend on it); no assembly is scanned.
/// </summary>
public static class BuiltInModelLoaders
{
    /// <summary>The built-in loaders.</summary>
    public static IReadOnlyList<ModelLoader> All { get; } =
    [
        new(Pipeline.TransformerChain.LoaderSignature, Pipeline.TransformerChain.CurrentVersion, Pipeline.TransformerChain.Load),
        new(Data.Transforms.ResizeTransformer.LoaderSignature, Data.Transforms.ResizeTransformer.CurrentVersion, Data.Transforms.ResizeTransformer.Load),
        new(Data.Transforms.ConvertChannelsTransformer.LoaderSignature, Data.Transforms.ConvertChannelsTransformer.CurrentVersion, Data.Transforms.ConvertChannelsTransformer.Load),
        new(Data.Transforms.BinarizeMaskTransformer.LoaderSignature, Data.Transforms.BinarizeMaskTransformer.CurrentVersion, Data.Transforms.BinarizeMaskTransformer.Load),
        new(Data.Transforms.MapMaskValuesTransformer.LoaderSignature, Data.Transforms.MapMaskValuesTransformer.CurrentVersion, Data.Transforms.MapMaskValuesTransformer.Load),
        new(Segmentation.SegmentationTransformer.LoaderSignature, Segmentation.SegmentationTransformer.CurrentVersion, Segmentation.SegmentationTransformer.Load),
        new(Augmentation.Adversarial.AdversarialAttackTransformer.LoaderSignature, Augmentation.Adversarial.AdversarialAttackTransformer.CurrentVersion, Augmentation.Adversarial.AdversarialAttackTransformer.Load),
        new(Diffusion.ImageDiffusionTransformer.LoaderSignature, Diffusion.ImageDiffusionTransformer.CurrentVersion, Diffusion.ImageDiffusionTransformer.Load),
        new(Dasp.DaspTransformer.LoaderSignature, Dasp.DaspTransformer.CurrentVersion, Dasp.DaspTransformer.Load),
        new(Diffusion.MaskDiffusionTransformer.LoaderSignature, Diffusion.MaskDiffusionTransformer.CurrentVersion, Diffusion.MaskDiffusionTransformer.Load),
        new(Attacks.DeformationAttackTransformer.LoaderSignature, Attacks.DeformationAttackTransformer.CurrentVersion, Attacks.DeformationAttackTransformer.Load),
        new(Segmentation.Cdal.CdalTransformer.LoaderSignature, Segmentation.Cdal.CdalTransformer.CurrentVersion, Segmentation.Cdal.CdalTransformer.Load),
    ];
}

internal static class ModelLoaderRegistration
{
#pragma warning disable CA2255 // the library registers its own loaders once, when it loads; nothing else runs here
    [ModuleInitializer]
    internal static void RegisterBuiltIns() => ModelLoaderRegistry.RegisterAll(BuiltInModelLoaders.All);
#pragma warning restore CA2255
}
