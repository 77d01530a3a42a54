using Microsoft.ML;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using ITransformer = Microsoft.ML.ITransformer;
using IDataView = Microsoft.ML.IDataView;
using DataViewSchema = Microsoft.ML.DataViewSchema;

namespace Microsoft.ML
{
    /// <summary>The entry point of MLNetMedSeg on an <see cref="MLContext"/>: <c>ml.MedSeg()</c>.</summary>
    public static class MedSegMLContextExtensions
    {
        /// <summary>
        /// MLNetMedSeg's catalogs on this context: <see cref="MLNetMedSeg.MedSegCatalog.Data"/> (folder loaders),
        /// <see cref="MLNetMedSeg.MedSegCatalog.Transforms"/> (mask loading, resizing), <see cref="MLNetMedSeg.MedSegCatalog.Trainers"/>
        /// (segmentation), <see cref="MLNetMedSeg.MedSegCatalog.Generation"/> (diffusion),
        /// <see cref="MLNetMedSeg.MedSegCatalog.Augmentation"/> (attacks) and <see cref="MLNetMedSeg.MedSegCatalog.Evaluate"/>.
        /// Every stage takes its seed from the context's seed and its own name, its device from
        /// <see cref="MLContext.GpuDeviceId"/> / <see cref="MLContext.FallbackToCpu"/>, and logs to <see cref="MLContext.Log"/>.
        /// </summary>
        public static MLNetMedSeg.MedSegCatalog MedSeg(this MLContext mlContext)
        {
            ArgumentNullException.ThrowIfNull(mlContext);
            return new MLNetMedSeg.MedSegCatalog(mlContext);
        }
    }
}

namespace MLNetMedSeg
{
    /// <summary>MLNetMedSeg's catalogs on an <see cref="MLContext"/> (made by <c>ml.MedSeg()</c>).</summary>
    public sealed class MedSegCatalog
    {
        internal MedSegCatalog(MLContext mlContext)
        {
            MLContext = mlContext;
            Data = new MedSegDataCatalog(this);
            Transforms = new MedSegTransformsCatalog(this);
            Trainers = new MedSegTrainersCatalog(this);
            Generation = new MedSegGenerationCatalog(this);
            Augmentation = new MedSegAugmentationCatalog(this);
        }

        /// <summary>The ML.NET context the stages come from.</summary>
        public MLContext MLContext { get; }

        /// <summary>Loading image/mask pairs (folders matched by file name).</summary>
        public MedSegDataCatalog Data { get; }

        /// <summary>Data transforms: masks from files (nearest resize, binarised), resizing, channels.</summary>
        public MedSegTransformsCatalog Transforms { get; }

        /// <summary>Segmentation trainers (U-Net, U-Net++, LinkNet, DeepLabv3+).</summary>
        public MedSegTrainersCatalog Trainers { get; }

        /// <summary>Generative stages: Bernoulli mask diffusion, mask-conditioned image diffusion.</summary>
        public MedSegGenerationCatalog Generation { get; }

        /// <summary>Adversarial augmenters and the deformation attacker.</summary>
        public MedSegAugmentationCatalog Augmentation { get; }

        /// <summary>
        /// Progress of every long Fit started from this MLContext (epoch, step, loss, items/s, ETA), besides the one
        /// line every 2 s that goes to <see cref="MLContext.Log"/>. Kept per MLContext.
        /// </summary>
        public IProgress<TrainingProgress>? Progress
        {
            get => MLContextBridge.For(MLContext).Progress;
            set => MLContextBridge.For(MLContext).Progress = value;
        }

        /// <summary>
        /// Cancels the training of every stage of this MLContext (ML.NET's <c>Fit</c> takes no token): set it before
        /// <c>Fit</c>; when it is cancelled the running stage stops at its next step with an
        /// <see cref="OperationCanceledException"/> (a stage with a checkpoint folder keeps its last finished epoch and
        /// resumes from it). Kept per MLContext.
        /// </summary>
        public CancellationToken CancellationToken
        {
            get => MLContextBridge.For(MLContext).CancellationToken;
            set => MLContextBridge.For(MLContext).CancellationToken = value;
        }

        /// <summary>
        /// <c>ml.Model.Save</c> that never leaves a half-written file: the model goes to a temporary file next to
        /// <paramref name="path"/>, which then replaces it (a failed save leaves any earlier file untouched).
        /// </summary>
        public void SaveModel(ITransformer model, DataViewSchema inputSchema, string path)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentException.ThrowIfNullOrEmpty(path);
            string full = Path.GetFullPath(path);
            string tmp = full + ".tmp-" + Guid.NewGuid().ToString("N");
            try
            {
                using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
                {
                    MLContext.Model.Save(model, inputSchema, fs);
                    fs.Flush(flushToDisk: true);
                }
                File.Move(tmp, full, overwrite: true);
            }
            catch
            {
                try { File.Delete(tmp); } catch (IOException) { }
                throw;
            }
        }

        /// <summary>
        /// <c>ml.Model.Load</c> with errors that name the file: a missing file is a <see cref="FileNotFoundException"/>;
        /// a truncated, tampered or foreign file an <see cref="InvalidDataException"/> saying what was wrong.
        /// </summary>
        public ITransformer LoadModel(string path, out DataViewSchema inputSchema)
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            if (!File.Exists(path)) throw new FileNotFoundException($"the model file '{path}' does not exist", path);
            try
            {
                return MLContext.Model.Load(path, out inputSchema);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not FileNotFoundException)
            {
                throw new InvalidDataException($"'{path}' is not a model this library can read: {e.Message}", e);
            }
        }

        /// <summary>A library context for one stage (seed from the MLContext's seed and <paramref name="stage"/>).</summary>
        internal MedSegContext ContextFor(string stage) => MLContextBridge.ContextFor(MLContext, stage);

        /// <summary>
        /// Evaluates binary segmentation, as <c>ml.BinaryClassification.Evaluate</c> does for classifiers:
        /// <paramref name="labelColumnName"/> holds the ground truth (float [1,H,W] in {0,1}), <paramref name="scoreColumnName"/>
        /// the probabilities (float [1,H,W]); a pixel is foreground at ≥ <see cref="EvaluationOptions.Threshold"/> (0.5).
        /// Returns per-image and aggregate IoU, Dice, precision, recall, accuracy, HD95 and the rest (paper 000's table
        /// columns). A missing or wrongly typed column is an error naming it.
        /// </summary>
        public EvaluationResult Evaluate(IDataView data, string labelColumnName = "Mask", string scoreColumnName = "Probability",
            EvaluationOptions? options = null)
        {
            ArgumentNullException.ThrowIfNull(data);
            var ctx = ContextFor("Evaluate");
            return DataViewEvaluation.EvaluateBinary(ctx, MLNetData.AsLibraryView(data), labelColumnName, scoreColumnName, options);
        }

        /// <summary>
        /// Evaluates multi-class segmentation with <paramref name="numberOfClasses"/> classes (background 0 included):
        /// the label is an integer class map [H,W], the score either a class map or float scores [C,H,W] (argmax).
        /// </summary>
        public EvaluationResult EvaluateMultiClass(IDataView data, int numberOfClasses, string labelColumnName = "Mask",
            string scoreColumnName = "Probability", EvaluationOptions? options = null)
        {
            ArgumentNullException.ThrowIfNull(data);
            var ctx = ContextFor("Evaluate");
            return DataViewEvaluation.EvaluateMultiClass(ctx, MLNetData.AsLibraryView(data), numberOfClasses, labelColumnName, scoreColumnName, options);
        }
    }

    /// <summary>Base of MLNetMedSeg's catalogs: each stage adds its methods as extension methods on its catalog.</summary>
    public abstract class MedSegCatalogBase(MedSegCatalog owner)
    {
        /// <summary>The catalog root (its MLContext, progress).</summary>
        public MedSegCatalog Owner { get; } = owner;

        /// <summary>A library context for one stage: seed from the MLContext's seed and the stage's stable name.</summary>
        internal MedSegContext ContextFor(string stage) => Owner.ContextFor(stage);
    }

    /// <summary>Loading image/mask pairs.</summary>
    public sealed class MedSegDataCatalog(MedSegCatalog owner) : MedSegCatalogBase(owner);

    /// <summary>Data transforms for images and masks.</summary>
    public sealed class MedSegTransformsCatalog(MedSegCatalog owner) : MedSegCatalogBase(owner);

    /// <summary>Segmentation trainers.</summary>
    public sealed class MedSegTrainersCatalog(MedSegCatalog owner) : MedSegCatalogBase(owner);

    /// <summary>Generative stages.</summary>
    public sealed class MedSegGenerationCatalog(MedSegCatalog owner) : MedSegCatalogBase(owner);

    /// <summary>Augmenters and attackers.</summary>
    public sealed class MedSegAugmentationCatalog(MedSegCatalog owner) : MedSegCatalogBase(owner);
}
