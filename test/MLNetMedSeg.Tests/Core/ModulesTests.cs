using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="MedSegModule"/> and <see cref="ModuleExtensions"/>: PyTorch's traversal and state-dict orders, explicit
/// registration, device moves, safetensors files of modules and the checked state-dict load.
/// </summary>
[TestClass]
public sealed class ModulesTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "medseg-modules-" + Guid.NewGuid().ToString("N")));

    [TestCleanup]
    public void Cleanup() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    // The PyTorch twin (/usr/bin/python3, PyTorch 1.13):
    //   class Child(nn.Module):
    //       def __init__(s): super().__init__(); s.conv = nn.Conv2d(2, 3, 1); s.register_buffer("scale", torch.ones(3)); s.bn = nn.BatchNorm2d(3)
    //   class Root(nn.Module):
    //       def __init__(s):
    //           super().__init__(); s.register_parameter("alpha", nn.Parameter(torch.zeros(1)))
    //           s.register_buffer("step", torch.zeros(1, dtype=torch.long)); s.register_buffer("cache", torch.zeros(2), persistent=False)
    //           s.child = Child(); s.head = nn.Linear(3, 1)
    //   [n for n, _ in Root().named_modules()]  and  list(Root().state_dict().keys())
    private static readonly string[] PyTorchModules = ["", "child", "child.conv", "child.bn", "head"];
    private static readonly string[] PyTorchStateDict =
    [
        "alpha", "step", "child.scale", "child.conv.weight", "child.conv.bias", "child.bn.weight", "child.bn.bias", "child.bn.running_mean",
        "child.bn.running_var", "child.bn.num_batches_tracked", "head.weight", "head.bias",
    ];

    private sealed class Child : MedSegModule
    {
        public Child() : base(nameof(Child))
        {
            RegisterModule("conv", nn.Conv2d(2, 3, 1));
            RegisterBuffer("scale", ones(3));
            RegisterModule("bn", nn.BatchNorm2d(3));
        }
    }

    private sealed class Root : MedSegModule
    {
        public Root() : base(nameof(Root))
        {
            RegisterParameter("alpha", new Parameter(zeros(1)));
            RegisterBuffer("step", zeros(new long[] { 1 }, ScalarType.Int64));
            RegisterBuffer("cache", zeros(2), persistent: false);
            RegisterModule("child", new Child());
            RegisterModule("head", nn.Linear(3, 1));
        }
    }

    [TestMethod]
    public void PreOrderIsPyTorchsNamedModules()
    {
        using var scope = NewDisposeScope();
        using var root = new Root();
        var pre = root.PreOrder().ToList();
        CollectionAssert.AreEqual(PyTorchModules, pre.Select(e => e.Name).ToArray());
        Assert.IsTrue(ReferenceEquals(root, pre[0].Module), "the root comes first, under the name \"\"");
        Assert.IsInstanceOfType<Conv2d>(pre[2].Module);
        // TorchSharp's own named_modules() leaves the root out (and orders a level's children before their descendants).
        Assert.IsFalse(root.named_modules().Any(e => e.name.Length == 0));

        // A module registered twice is listed once (as PyTorch's named_modules).
        using var seq = nn.Sequential(("a", nn.ReLU()), ("b", nn.Linear(2, 2)));
        var shared = new SharedTwice(seq);
        CollectionAssert.AreEqual(new[] { "", "first", "first.a", "first.b" }, shared.PreOrder().Select(e => e.Name).ToArray());
    }

    private sealed class SharedTwice : MedSegModule
    {
        public SharedTwice(nn.Module m) : base(nameof(SharedTwice)) { RegisterModule("first", m); RegisterModule("second", m); }
    }

    [TestMethod]
    public void StateDictInOrderIsPyTorchsOrder()
    {
        using var scope = NewDisposeScope();
        using var root = new Root();
        var sd = root.StateDictInOrder();
        CollectionAssert.AreEqual(PyTorchStateDict, sd.Keys.ToArray(), "own parameters, own persistent buffers, then each child, depth first");
        Assert.IsTrue(ReferenceEquals(sd["head.weight"], ((Linear)root.PreOrder().Last().Module).weight), "the module's own tensors");
        // TorchSharp's state_dict() has the same entries in another order (every parameter before any buffer).
        var ts = root.state_dict();
        CollectionAssert.AreEquivalent(PyTorchStateDict, ts.Keys.ToArray());
        CollectionAssert.AreNotEqual(PyTorchStateDict, ts.Keys.ToArray());
    }

    /// <summary>A child that keeps its layer in a field and registers it under another name.</summary>
    private sealed class Explicit : MedSegModule<Tensor, Tensor>
    {
        private readonly Linear _lin;
        public Explicit() : base(nameof(Explicit)) { _lin = RegisterModule("encoder", nn.Linear(2, 2)); }
        public override Tensor forward(Tensor x) => _lin.call(x);
    }

    /// <summary>The same on TorchSharp's base class, which also registers fields by reflection.</summary>
    private sealed class Reflected : nn.Module<Tensor, Tensor>
    {
        private readonly Linear _lin;
        public Reflected() : base(nameof(Reflected)) { _lin = nn.Linear(2, 2); register_module("encoder", _lin); }
        public override Tensor forward(Tensor x) => _lin.call(x);
    }

    private sealed class Parent : MedSegModule
    {
        public Parent(nn.Module child) : base(nameof(Parent)) => RegisterModule("child", child);
    }

    [TestMethod]
    public void MedSegModulesHoldExactlyWhatTheyRegistered()
    {
        using var scope = NewDisposeScope();
        using var ours = new Parent(new Explicit());
        CollectionAssert.AreEqual(new[] { "child.encoder.weight", "child.encoder.bias" }, ours.StateDictInOrder().Keys.ToArray());
        CollectionAssert.AreEquivalent(new[] { "child.encoder.weight", "child.encoder.bias" }, ours.state_dict().Keys.ToArray());
        Assert.AreEqual(2, ours.parameters().Count());
        Assert.AreEqual(6, ours.ParameterCount());
        // What the explicit registration avoids: the reflecting base adds the field under its own name too.
        using var theirs = new Parent(new Reflected());
        var keys = theirs.state_dict().Keys.ToList();
        Assert.IsTrue(keys.Count > 2 && keys.Any(k => k.Contains("_lin", StringComparison.Ordinal)),
            "TorchSharp registers the field as well: " + string.Join(", ", keys));
    }

    [TestMethod]
    public void MoveToTheSameDeviceIsANoOpAndLeavesNothingToTheFinalizer()
    {
        // No dispose scope around this test, so that a temporary left undisposed would reach the finalizer.
        using var root = new Root();
        var before = root.StateDictInOrder().Values.ToList();
        long finalized = TorchRuntime.FinalizedTensorCount;
        Assert.IsTrue(ReferenceEquals(root, root.MoveTo(CPU)));
        root.MoveTo(Devices.Parse("cpu"));
        Assert.AreEqual(finalized, TorchRuntime.FinalizedTensorCount, "nothing left to the finalizer");
        var after = root.StateDictInOrder().Values.ToList();
        Assert.IsTrue(before.Zip(after).All(p => ReferenceEquals(p.First, p.Second)), "the same parameter and buffer objects");
        if (!cuda.is_available())
        {
            // A device this build cannot use: a clear error, and the module is untouched.
            var e = Assert.ThrowsException<InvalidOperationException>(() => root.MoveTo(Devices.Parse("cuda")));
            StringAssert.Contains(e.Message, "TorchSharp-cuda");
            Assert.IsTrue(root.parameters().All(p => p.device_type == DeviceType.CPU && !p.IsInvalid));
        }
    }

    [TestMethod]
    public void SavingAModuleToAStreamLeavesTheStreamOpen()
    {
        using var scope = NewDisposeScope();
        using var root = new Root();
        using var ms = new MemoryStream();
        Safetensors.Save(root.StateDictInOrder(), ms);
        Assert.IsTrue(ms.CanWrite, "the stream stays open (a zip entry's writer goes on)");
        long end = ms.Position;
        ms.Position = 0;
        var back = Safetensors.Load(ms);
        Assert.AreEqual(end, ms.Position);
        CollectionAssert.AreEquivalent(PyTorchStateDict, back.Keys.ToArray());
        // Unlike TorchSharp's Module.save(Stream), which closes the stream it is given.
        using var ms2 = new MemoryStream();
        root.save(ms2);
        Assert.IsFalse(ms2.CanWrite, "TorchSharp's Module.save closed the stream");
    }

    [TestMethod]
    public void SafetensorsRoundTripOfAModule()
    {
        using var scope = NewDisposeScope();
        using var a = new Root();
        using var g = new Generator(1);
        SeededInit.Apply(a, g);
        using (no_grad())
        {
            a.StateDictInOrder()["child.bn.running_mean"].copy_(tensor(new float[] { 0.5f, -1, 2 }));
            a.StateDictInOrder()["step"].fill_(S(41));
            a.StateDictInOrder()["alpha"].fill_(S(3.25));
        }
        string path = Path.Combine(_dir, "root.safetensors");
        a.SaveSafetensors(path, new Dictionary<string, string> { ["arch"] = "root" });
        Assert.AreEqual("root", Safetensors.ReadMetadata(path)["arch"]);
        var file = Safetensors.Load(path);
        CollectionAssert.AreEquivalent(PyTorchStateDict, file.Keys.ToArray(), "persistent entries only (no 'cache')");

        using var b = new Root();
        var (missing, unexpected) = b.LoadSafetensors(path);
        Assert.AreEqual(0, missing.Count + unexpected.Count);
        var sa = a.StateDictInOrder(); var sb = b.StateDictInOrder();
        foreach (var k in PyTorchStateDict) Assert.IsTrue(sa[k].IsEqual(sb[k]), k);
        Assert.AreEqual(41L, sb["step"].ToInt64());
        Assert.IsTrue(b.parameters().All(p => p.requires_grad), "loaded parameters stay trainable");

        // A file from another network: an error naming the file and the keys.
        using var other = nn.Linear(3, 1);
        string otherPath = Path.Combine(_dir, "linear.safetensors");
        other.SaveSafetensors(otherPath);
        var e = Assert.ThrowsException<InvalidOperationException>(() => b.LoadSafetensors(otherPath));
        StringAssert.Contains(e.Message, otherPath);
        StringAssert.Contains(e.Message, "missing keys: alpha, step, child.scale");
        StringAssert.Matches(e.Message, new System.Text.RegularExpressions.Regex("unexpected keys: (weight, bias|bias, weight)"));
    }

    private static Dictionary<string, Tensor> Filled(nn.Module m, double v) =>
        m.StateDictInOrder().ToDictionary(e => e.Key, e => full_like(e.Value, S(v)));

    private static Dictionary<string, Tensor> Snapshot(nn.Module m) =>
        m.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.detach().clone());

    private static void AssertUnchanged(Dictionary<string, Tensor> before, nn.Module m, string what)
    {
        foreach (var (k, v) in m.StateDictInOrder()) Assert.IsTrue(before[k].IsEqual(v), $"{what}: {k} was copied");
    }

    [TestMethod]
    public void LoadStateDictCheckedNamesEveryProblemAndCopiesNothingOnError()
    {
        using var scope = NewDisposeScope();
        using var m = new Root();
        var before = Snapshot(m);

        var state = Filled(m, 2);
        state.Remove("head.bias");
        state.Remove("child.scale");
        state["extra.weight"] = ones(1);
        var e = Assert.ThrowsException<InvalidOperationException>(() => m.LoadStateDictChecked(state, source: "ckpt.safetensors"));
        StringAssert.Contains(e.Message, "Root from ckpt.safetensors");
        StringAssert.Contains(e.Message, "missing keys: child.scale, head.bias");
        StringAssert.Contains(e.Message, "unexpected keys: extra.weight");
        AssertUnchanged(before, m, "strict key error");

        // Shape mismatches are all named, and found before anything is copied (the mismatch is the last key).
        state = Filled(m, 2);
        state["head.bias"] = ones(2);
        state["child.conv.weight"] = ones(3, 2, 3, 3);
        e = Assert.ThrowsException<InvalidOperationException>(() => m.LoadStateDictChecked(state));
        StringAssert.Contains(e.Message, "shape mismatch for child.conv.weight: expected [3, 2, 1, 1], got [3, 2, 3, 3]; head.bias: expected [1], got [2]");
        AssertUnchanged(before, m, "shape mismatch");
        e = Assert.ThrowsException<InvalidOperationException>(() => m.LoadStateDictChecked(state, strict: false));
        AssertUnchanged(before, m, "shape mismatch, not strict");

        // Not strict: what is there is copied (converted to each tensor's dtype), the rest reported.
        state = Filled(m, 2).ToDictionary(e => e.Key, e => e.Value.to(ScalarType.Float64));
        state.Remove("alpha");
        state["unused"] = zeros(1);
        var (missing, unexpected) = m.LoadStateDictChecked(state, strict: false);
        CollectionAssert.AreEqual(new[] { "alpha" }, missing.ToArray());
        CollectionAssert.AreEqual(new[] { "unused" }, unexpected.ToArray());
        var now = m.StateDictInOrder();
        Assert.IsTrue(now["alpha"].IsEqual(before["alpha"]), "a missing key keeps its value");
        Assert.AreEqual(2.0, now["child.conv.weight"].max().ToDouble());
        Assert.AreEqual(ScalarType.Float32, now["child.conv.weight"].dtype, "converted to the parameter's dtype");
        Assert.AreEqual(2L, now["step"].ToInt64());
        Assert.AreEqual(ScalarType.Int64, now["step"].dtype);
        Assert.IsNull(now["head.weight"].grad, "copied without autograd");
    }

    [TestMethod]
    public void BuildReleasesTheConstructorsTemporariesAtOnce()
    {
        long finalized = TorchRuntime.FinalizedTensorCount;
        using (var conv = ModuleExtensions.Build(() => nn.Conv2d(3, 8, 3)))
        {
            Assert.AreEqual(2, conv.parameters().Count());
            Assert.IsTrue(conv.parameters().All(p => !p.IsInvalid), "the module's own tensors survive the scope");
        }
        Assert.AreEqual(finalized, TorchRuntime.FinalizedTensorCount);
    }
}
