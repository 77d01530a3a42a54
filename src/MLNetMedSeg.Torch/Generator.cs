using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

/// <summary>
/// An explicit random-number stream, so that each component can own its randomness without touching the
/// global generator: <c>using var g = new Generator(seed); torch.randn([2, 3], generator: g)</c>.
/// </summary>
public sealed class Generator : IDisposable
{
    private GeneratorHandle? _handle;

    /// <summary>A new generator on a device (CPU by default) seeded with <paramref name="seed"/>.</summary>
    public Generator(ulong seed, Device? device = null)
    {
        device ??= torch.CPU;
        device.EnsureAvailable();
        LibTorch.Check(LibTorch.mt_generator_new((int)device.type, device.NativeIndex, seed, out IntPtr h));
        _handle = new GeneratorHandle(h);
        Device = device;
    }

    private Generator(IntPtr h, Device device)
    {
        _handle = new GeneratorHandle(h);
        Device = device;
    }

    internal static Generator Default(Device device)
    {
        LibTorch.Check(LibTorch.mt_generator_default((int)device.type, device.NativeIndex, out IntPtr h));
        return new Generator(h, device);
    }

    public Device Device { get; }

    internal GeneratorHandle Handle => _handle ?? throw new ObjectDisposedException(nameof(Generator));

    /// <summary>Reseeds this generator; returns this.</summary>
    public Generator manual_seed(ulong seed)
    {
        LibTorch.Check(LibTorch.mt_generator_manual_seed(Handle, seed));
        return this;
    }

    public ulong initial_seed()
    {
        LibTorch.Check(LibTorch.mt_generator_initial_seed(Handle, out ulong s));
        return s;
    }

    /// <summary>The generator's full state as a uint8 tensor (save it to resume a stream).</summary>
    public Tensor get_state()
    {
        LibTorch.Check(LibTorch.mt_generator_get_state(Handle, out IntPtr t));
        return new Tensor(t);
    }

    public void set_state(Tensor state) => LibTorch.Check(LibTorch.mt_generator_set_state(Handle, state.Handle));

    public void Dispose()
    {
        var h = _handle;
        _handle = null;
        h?.ReleaseNow();
    }
}
