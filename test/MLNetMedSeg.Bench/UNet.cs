using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Bench;

/// <summary>
/// The benchmark U-Net, layer for layer the same as build/bench/bench_torch.py: encoder widths 32/64/128/256/512,
/// four 2x down-samplings, two 3x3 conv (no bias) + BatchNorm + ReLU per block, 2x2 transposed-conv up, 1x1 head
/// (7,763,041 parameters for 3 input channels).
/// </summary>
internal sealed class BenchUNet : MedSegModule<Tensor, Tensor>
{
    private readonly ModuleList<Sequential> _down = new();
    private readonly ModuleList<nn.Module<Tensor, Tensor>> _up = new();
    private readonly ModuleList<Sequential> _dec = new();
    private readonly nn.Module<Tensor, Tensor> _head;

    public BenchUNet(long inChannels = 3, long[]? widths = null) : base("BenchUNet")
    {
        var w = widths ?? [32, 64, 128, 256, 512];
        _down.append(Block(inChannels, w[0]));
        for (int i = 0; i < 4; i++) _down.append(Block(w[i], w[i + 1]));
        for (int i = 3; i >= 0; i--)
        {
            _up.append(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride: 2));
            _dec.append(Block(2 * w[i], w[i]));
        }
        _head = nn.Conv2d(w[0], 1, 1);
        RegisterModule("down", _down);
        RegisterModule("up", _up);
        RegisterModule("dec", _dec);
        RegisterModule("head", _head);
    }

    private static Sequential Block(long i, long o) => nn.Sequential(
        nn.Conv2d(i, o, 3, padding: 1, bias: false), nn.BatchNorm2d(o), nn.ReLU(inplace: true),
        nn.Conv2d(o, o, 3, padding: 1, bias: false), nn.BatchNorm2d(o), nn.ReLU(inplace: true));

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var skips = new Stack<Tensor>();
        var x = input;
        for (int k = 0; k < _down.Count; k++)
        {
            x = _down[k].call(x);
            if (k < 4)
            {
                skips.Push(x);
                x = nn.functional.max_pool2d(x, [2, 2]);
            }
        }
        for (int k = 0; k < _up.Count; k++)
        {
            x = _up[k].call(x);
            x = _dec[k].call(cat([x, skips.Pop()], 1));
        }
        return _head.call(x).MoveToOuterDisposeScope();
    }
}
