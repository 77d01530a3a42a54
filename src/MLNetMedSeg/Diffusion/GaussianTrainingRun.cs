using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// The training process the Gaussian diffusion stages share (the mask-conditioned image diffusion, the joint image+mask
/// diffusion): an ADM U-Net trained on ε-prediction (Ho et al.'s simple loss) with Adam and EMA weights, on batches of
/// <c>columns</c> shuffled per epoch from the stage's seed, with the training noise and dropout from one seeded
/// generator. A stage supplies what the network sees (<see cref="ModelInputs"/>); the loop's checkpoints hold the
/// network, the optimizer and the generator. Disposes everything it made except the network <see cref="TakeNetwork"/> hands out.
/// </summary>
internal abstract class GaussianTrainingRun : TrainingProcess, IDisposable
{
    private readonly int _batchSize;
    private readonly double _learningRate;
    private readonly ulong _seed;
    private readonly string[] _columns;
    private DiffusionUNet? _net;
    private Optimizer? _optimizer;
    private Generator? _generator;

    /// <param name="context">Device and log.</param>
    /// <param name="network">The U-Net's options.</param>
    /// <param name="schedule">β schedule.</param>
    /// <param name="timeSteps">T.</param>
    /// <param name="learningRate">Adam's rate.</param>
    /// <param name="emaDecay">EMA decay of the weights.</param>
    /// <param name="batchSize">Rows per step.</param>
    /// <param name="seed">The stage's seed: initial weights ("init"), noise and dropout ("noise"), batch order ("shuffle", epoch).</param>
    /// <param name="input">The training rows.</param>
    /// <param name="columns">The columns a batch carries.</param>
    protected GaussianTrainingRun(MedSegContext context, DiffusionUNetOptions network, BetaScheduleKind schedule, int timeSteps,
        double learningRate, double emaDecay, int batchSize, ulong seed, Data.IDataView input, string[] columns)
    {
        Context = context;
        Device = context.Device;
        Input = input;
        _batchSize = batchSize;
        _learningRate = learningRate;
        _seed = seed;
        _columns = columns;
        Diffusion = new GaussianDiffusion(NoiseSchedule.Create(schedule, timeSteps));
        using (var initGen = new Generator(MedSegContext.MixSeed(seed, "init", 0)))
            _net = new DiffusionUNet(network, initGen);
        _net.MoveTo(Device);
        _generator = new Generator(MedSegContext.MixSeed(seed, "noise", 0), Device);
        _net.DropoutGenerator = _generator;
        Ema = new ExponentialMovingAverage(_net, emaDecay);
        _optimizer = Optimizers.Adam(_net.parameters(), lr: learningRate);
    }

    protected MedSegContext Context { get; }

    /// <summary>The stage's seed.</summary>
    protected ulong Seed => _seed;

    protected Device Device { get; }

    protected Data.IDataView Input { get; }

    protected GaussianDiffusion Diffusion { get; }

    /// <summary>The network being trained (until <see cref="TakeNetwork"/>).</summary>
    protected DiffusionUNet Net => _net ?? throw new ObjectDisposedException(GetType().Name, "the network was handed out");

    protected ExponentialMovingAverage Ema { get; }

    /// <summary>x₀ in model space ([−1, 1]), the condition (or null) and the condition's dropout probability for a batch.</summary>
    protected abstract (Tensor X0, Tensor? Condition, double ConditionDropout) ModelInputs(DataBatch batch);

    public override long? StepsPerEpoch => Input.GetRowCount() is long n ? (n + _batchSize - 1) / _batchSize : null;

    public override double? LearningRate => _learningRate;

    internal override IEnumerable<DataBatch> Batches(TrainingState state)
    {
        Net.train();
        var rand = new Random((int)(MedSegContext.MixSeed(_seed, "shuffle", state.Epoch) & 0x7FFFFFFF));
        return Input.GetBatches(_columns, _batchSize, rand, Device, cancellationToken: state.CancellationToken);
    }

    internal override StepResult Step(DataBatch batch, TrainingState state)
    {
        var (x0, condition, dropout) = ModelInputs(batch);
        var optimizer = _optimizer!;
        optimizer.ZeroGrad();
        var loss = Diffusion.TrainingLoss(Net.forward, x0, condition, dropout, _generator);
        double value = loss.DoubleValue();
        if (!double.IsFinite(value)) return new StepResult(value, batch.Count);
        loss.backward();
        optimizer.step();
        return new StepResult(value, batch.Count);
    }

    public override void SaveState(CheckpointState c)
    {
        c.Put("net", Net);
        c.Put("opt", _optimizer!);
        c.Put("rng", _generator!);
    }

    public override void LoadState(CheckpointState c)
    {
        c.Load("net", Net);
        c.Load("opt", _optimizer!);
        c.Load("rng", _generator!);
    }

    /// <summary>The trained network with the EMA weights, in eval mode; the caller owns it from now on.</summary>
    protected DiffusionUNet TakeNetwork()
    {
        var net = Net;
        net.DropoutGenerator = null; // the generator is disposed with this run
        Ema.CopyTo(net);
        net.eval();
        _net = null;
        return net;
    }

    public virtual void Dispose()
    {
        _net?.Dispose();
        Ema.Dispose();
        _optimizer?.Dispose();
        _generator?.Dispose();
    }
}
