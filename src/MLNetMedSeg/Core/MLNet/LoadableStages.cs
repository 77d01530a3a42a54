using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Attacks;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Clustering;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Data;
using MLNetMedSeg.Data.Transforms;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Synthesis;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;

// ML.NET finds a stage's loader through these attributes when ml.Model.Load reads the stage's loader signature from
// the model file (the file also names this assembly). One line per stage; each stage has a private static
// Create(IHostEnvironment, ModelLoadContext). LoadableClassAttribute and SignatureLoadModel are ML.NET internals: see
// build/msbuild/MLNetInternals.targets. The name registered is the one ModelFiles.HeaderSignature writes into the model
// header: the stage's signature, or for the two longer than the header's 23 characters, "MS." + the part after "MEDSEG."
// (a literal here, as attribute arguments must be constants; ModelFilesTests checks that they agree).
[assembly: LoadableClass(typeof(SegmentationTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg segmentation model", SegmentationTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(MaskDiffusionTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg mask diffusion", MaskDiffusionTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(ImageDiffusionTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg image diffusion", ImageDiffusionTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(JointDiffusionTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg joint image + mask diffusion", JointDiffusionTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(RePaintTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg RePaint inpainting", RePaintTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(StyleTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg diffusion styling", StyleTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(AdversarialAttackTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg adversarial augmenter", "MS.ADVERSARIAL_ATTACK")]
[assembly: LoadableClass(typeof(DeformationAttackTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg deformation attacker", "MS.DEFORMATION_ATTACK")]
[assembly: LoadableClass(typeof(DaspTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg DASP flow", DaspTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(ResizeTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg resize", ResizeTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(ConvertChannelsTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg convert channels", ConvertChannelsTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(BinarizeMaskTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg binarize mask", BinarizeMaskTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(MapMaskValuesTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg map mask values", MapMaskValuesTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(LoadMaskTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg load masks", LoadMaskTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(LoadImageTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg load images", LoadImageTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(MLNetMedSeg.Augmentation.Adversarial.AdversarialTrainingTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg adversarial training", MLNetMedSeg.Augmentation.Adversarial.AdversarialTrainingTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(CdalTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg cDAL segmenter", CdalTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(ClusterImagesTransformer), null, typeof(SignatureLoadModel), "MLNetMedSeg image clustering", ClusterImagesTransformer.LoaderSignature)]
