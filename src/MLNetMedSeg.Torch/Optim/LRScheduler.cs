namespace MLNetMedSeg.Torch.Optim;

/// <summary>
/// Base of the learning-rate schedulers, as torch.optim.lr_scheduler: created after the optimizer, it sets each
/// group's lr for epoch 0 at once; call <see cref="step()"/> once per epoch (or iteration) after
/// <see cref="Optimizer.step"/>. The first scheduler attached to an optimizer records each group's lr as
/// <see cref="ParamGroup.initial_lr"/>, the base of every formula. Learning rates are computed with PyTorch's
/// closed forms (<c>_get_closed_form_lr</c>) from the base lrs and <see cref="last_epoch"/>, so they agree with
/// PyTorch's recursive updates to double rounding but ignore lr changes made outside the scheduler.
/// </summary>
public abstract class LRScheduler
{
    private double[] _lastLr = [];

    /// <param name="optimizer">The optimizer whose group lrs are scheduled.</param>
    /// <param name="last_epoch">-1 (default) to start a new schedule; otherwise the epoch to resume after (needs initial_lr on every group).</param>
    protected LRScheduler(Optimizer optimizer, int last_epoch = -1)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        this.optimizer = optimizer;
        var groups = optimizer.ParamGroups;
        if (last_epoch == -1)
        {
            foreach (var g in groups) g.initial_lr ??= g.lr;
        }
        else
        {
            for (int k = 0; k < groups.Count; k++)
                if (groups[k].initial_lr is null)
                    throw new ArgumentException($"param 'initial_lr' is not specified in param_groups[{k}] when resuming an optimizer", nameof(last_epoch));
        }
        base_lrs = groups.Select(g => g.initial_lr!.Value).ToArray();
        this.last_epoch = last_epoch;
    }

    /// <summary>Call from the subclass constructor once its fields are set: performs PyTorch's initial step (epoch last_epoch + 1).</summary>
    protected void InitialStep() => step();

    /// <summary>The scheduled optimizer.</summary>
    public Optimizer optimizer { get; }

    /// <summary>Each group's base lr (its <see cref="ParamGroup.initial_lr"/>).</summary>
    public IReadOnlyList<double> base_lrs { get; }

    /// <summary>The epoch of the current lr (0 right after construction).</summary>
    public int last_epoch { get; protected set; }

    /// <summary>Advances one epoch and sets every group's lr.</summary>
    public virtual void step() => step(last_epoch + 1);

    /// <summary>Jumps to <paramref name="epoch"/> and sets every group's lr from the closed form.</summary>
    public virtual void step(int epoch)
    {
        last_epoch = epoch;
        var groups = optimizer.ParamGroups;
        var values = get_closed_form_lr(epoch);
        if (values.Length != groups.Count)
            throw new InvalidOperationException($"the optimizer has {groups.Count} parameter groups but the scheduler was created for {values.Length}");
        for (int k = 0; k < groups.Count; k++) groups[k].lr = values[k];
        _lastLr = groups.Select(g => g.lr).ToArray();
    }

    /// <summary>The lr of every group as last set by this scheduler.</summary>
    public virtual IReadOnlyList<double> get_last_lr() => _lastLr;

    /// <summary>Each group's lr at <paramref name="epoch"/>, from <see cref="base_lrs"/>.</summary>
    public abstract double[] get_closed_form_lr(int epoch);
}

/// <summary>Multiplies the lr by <c>gamma</c> every <c>step_size</c> epochs: lr = base·γ^⌊epoch/step_size⌋ (torch.optim.lr_scheduler.StepLR).</summary>
public sealed class StepLR : LRScheduler
{
    public StepLR(Optimizer optimizer, int step_size, double gamma = 0.1, int last_epoch = -1) : base(optimizer, last_epoch)
    {
        if (step_size <= 0) throw new ArgumentOutOfRangeException(nameof(step_size), step_size, "step_size must be positive");
        this.step_size = step_size;
        this.gamma = gamma;
        InitialStep();
    }

    public int step_size { get; }
    public double gamma { get; }

    public override double[] get_closed_form_lr(int epoch)
        => base_lrs.Select(b => b * Math.Pow(gamma, Math.Floor((double)epoch / step_size))).ToArray();
}

/// <summary>
/// Cosine annealing from the base lr to <c>eta_min</c> over <c>T_max</c> epochs (torch.optim.lr_scheduler.CosineAnnealingLR,
/// closed form): lr = eta_min + (base − eta_min)·(1 + cos(π·epoch/T_max))/2. Past T_max the cosine continues (rises again), as in PyTorch.
/// </summary>
public sealed class CosineAnnealingLR : LRScheduler
{
    public CosineAnnealingLR(Optimizer optimizer, int T_max, double eta_min = 0, int last_epoch = -1) : base(optimizer, last_epoch)
    {
        if (T_max <= 0) throw new ArgumentOutOfRangeException(nameof(T_max), T_max, "T_max must be positive");
        this.T_max = T_max;
        this.eta_min = eta_min;
        InitialStep();
    }

    public int T_max { get; }
    public double eta_min { get; }

    public override double[] get_closed_form_lr(int epoch)
        => base_lrs.Select(b => eta_min + (b - eta_min) * (1 + Math.Cos(Math.PI * epoch / T_max)) / 2).ToArray();
}

/// <summary>
/// Scales the base lr by a factor going linearly from <c>start_factor</c> to <c>end_factor</c> over <c>total_iters</c>
/// epochs, then constant (torch.optim.lr_scheduler.LinearLR, closed form):
/// lr = base·(start + (end − start)·min(total_iters, epoch)/total_iters). A start_factor of 0 is allowed (a warm-up from zero).
/// </summary>
public class LinearLR : LRScheduler
{
    public LinearLR(Optimizer optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0, int total_iters = 5, int last_epoch = -1)
        : base(optimizer, last_epoch)
    {
        if (!(start_factor >= 0 && start_factor <= 1))
            throw new ArgumentOutOfRangeException(nameof(start_factor), start_factor, "Starting multiplicative factor expected to be between 0 and 1.");
        if (!(end_factor >= 0 && end_factor <= 1))
            throw new ArgumentOutOfRangeException(nameof(end_factor), end_factor, "Ending multiplicative factor expected to be between 0 and 1.");
        if (total_iters <= 0) throw new ArgumentOutOfRangeException(nameof(total_iters), total_iters, "total_iters must be positive");
        this.start_factor = start_factor;
        this.end_factor = end_factor;
        this.total_iters = total_iters;
        InitialStep();
    }

    public double start_factor { get; }
    public double end_factor { get; }
    public int total_iters { get; }

    public override double[] get_closed_form_lr(int epoch)
        => base_lrs.Select(b => b * (start_factor + (end_factor - start_factor) * Math.Min(total_iters, epoch) / total_iters)).ToArray();
}

/// <summary>
/// Linear warm-up: lr = base·(start_factor + (1 − start_factor)·min(epoch, warmup_steps)/warmup_steps), reaching
/// the base lr after <c>warmup_steps</c> steps. The same as <see cref="LinearLR"/> with end_factor 1; chain it with
/// <see cref="SequentialLR"/> (milestone = warmup_steps) to continue with, e.g., cosine annealing.
/// </summary>
public sealed class LinearWarmup : LinearLR
{
    public LinearWarmup(Optimizer optimizer, int warmup_steps, double start_factor = 0.0, int last_epoch = -1)
        : base(optimizer, start_factor, 1.0, warmup_steps, last_epoch) { }

    public int warmup_steps => total_iters;
}

/// <summary>
/// Runs schedulers one after another (torch.optim.lr_scheduler.SequentialLR): scheduler k is active from
/// milestones[k−1] on and is restarted at epoch 0 when it takes over. Typical use: linear warm-up for W steps, then
/// cosine annealing: <c>SequentialLR(opt, [LinearWarmup(opt, W), CosineAnnealingLR(opt, T − W)], [W])</c>.
/// </summary>
public sealed class SequentialLR : LRScheduler
{
    private readonly LRScheduler[] _schedulers;
    private readonly int[] _milestones;
    private LRScheduler _active;

    public SequentialLR(Optimizer optimizer, IReadOnlyList<LRScheduler> schedulers, IReadOnlyList<int> milestones, int last_epoch = -1)
        : base(optimizer, last_epoch)
    {
        ArgumentNullException.ThrowIfNull(schedulers);
        ArgumentNullException.ThrowIfNull(milestones);
        if (schedulers.Count == 0) throw new ArgumentException("SequentialLR needs at least one scheduler", nameof(schedulers));
        for (int k = 0; k < schedulers.Count; k++)
            if (!ReferenceEquals(schedulers[k].optimizer, optimizer))
                throw new ArgumentException(
                    $"Sequential Schedulers expects all schedulers to belong to the same optimizer, but got schedulers at index {k} to be different than the optimizer passed in.",
                    nameof(schedulers));
        if (milestones.Count != schedulers.Count - 1)
            throw new ArgumentException(
                $"Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers {schedulers.Count} and the number of milestones to be equal to {milestones.Count}",
                nameof(milestones));
        for (int k = 1; k < milestones.Count; k++)
            if (milestones[k] <= milestones[k - 1]) throw new ArgumentException("milestones must be increasing", nameof(milestones));
        _schedulers = schedulers.ToArray();
        _milestones = milestones.ToArray();
        // As PyTorch: restart the first scheduler at epoch 0 (the others restart when their milestone is reached).
        this.last_epoch = last_epoch + 1;
        foreach (var g in optimizer.ParamGroups) g.lr = g.initial_lr!.Value;
        _active = _schedulers[0];
        _active.step(0);
    }

    /// <summary>The chained schedulers.</summary>
    public IReadOnlyList<LRScheduler> schedulers => _schedulers;

    /// <summary>The epochs at which the next scheduler takes over.</summary>
    public IReadOnlyList<int> milestones => _milestones;

    public override void step() => step(last_epoch + 1);

    public override void step(int epoch)
    {
        last_epoch = epoch;
        int idx = 0;
        while (idx < _milestones.Length && _milestones[idx] <= epoch) idx++;   // bisect_right
        _active = _schedulers[idx];
        int start = idx == 0 ? 0 : _milestones[idx - 1];
        _active.step(epoch - start);
    }

    /// <summary>The lrs set by the active scheduler.</summary>
    public override IReadOnlyList<double> get_last_lr() => _active.get_last_lr();

    public override double[] get_closed_form_lr(int epoch)
    {
        int idx = 0;
        while (idx < _milestones.Length && _milestones[idx] <= epoch) idx++;
        int start = idx == 0 ? 0 : _milestones[idx - 1];
        return _schedulers[idx].get_closed_form_lr(epoch - start);
    }
}
