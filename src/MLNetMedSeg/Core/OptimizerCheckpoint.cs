using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>
/// Optimizer state for checkpoints: TorchSharp's optimizers serialise their full state (options, step counts,
/// moments) to a binary stream; these helpers carry it as bytes (stored as a U8 tensor inside a checkpoint's
/// safetensors file), so that a resumed run continues bit for bit.
/// </summary>
public static class OptimizerCheckpoint
{
    /// <summary>The optimizer's complete state as bytes.</summary>
    public static byte[] Save(optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (optimizer is not TorchSharp.Modules.OptimizerHelper h)
            throw new NotSupportedException($"{optimizer.GetType().Name} cannot save its state");
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) h.save_state_dict(w);
        return ms.ToArray();
    }

    /// <summary>Restores a state saved by <see cref="Save"/> into an optimizer over the same parameters.</summary>
    public static void Load(optim.Optimizer optimizer, byte[] state, string source)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        if (optimizer is not TorchSharp.Modules.OptimizerHelper h)
            throw new NotSupportedException($"{optimizer.GetType().Name} cannot load a state");
        try
        {
            using var r = new BinaryReader(new MemoryStream(state, writable: false));
            h.load_state_dict(r);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"{source}: the optimizer state does not match this optimizer ({e.Message})", e);
        }
    }

    /// <summary>
    /// Clears the gradients of every parameter the optimizer updates (set to none), inside a dispose scope: TorchSharp's
    /// <c>Optimizer.zero_grad</c> leaves two tensor wrappers per parameter to the finalizer, once per training step.
    /// </summary>
    public static void ZeroGrad(this optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        using (torch.NewDisposeScope()) optimizer.zero_grad();
    }

    /// <summary>The learning rate of the optimizer's first parameter group.</summary>
    public static double LearningRate(this optim.Optimizer optimizer) => optimizer.ParamGroups.First().LearningRate;
}
