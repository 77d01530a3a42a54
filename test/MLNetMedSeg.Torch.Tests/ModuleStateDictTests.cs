using MLNetMedSeg.Torch.Serialization;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class ModuleStateDictTests
{
    private sealed class Inner : torch.nn.Module<Tensor, Tensor>
    {
        public readonly Parameter weight;
        public readonly Tensor running;

        public Inner(float fill) : base(nameof(Inner))
        {
            using var scope = torch.NewDisposeScope();
            weight = RegisterParameter("weight", torch.nn.Parameter(torch.full([2, 2], fill)))!;
            running = RegisterBuffer("running", torch.full([2], fill * 10))!;
            RegisterBuffer("scratch", torch.zeros(1), persistent: false);
            RegisterParameter("bias", null);
        }

        public override Tensor forward(Tensor input) => input * weight;
    }

    /// <summary>A parameter, a child, an int64 buffer and a parameter registered after the child.</summary>
    private sealed class Outer : torch.nn.Module<Tensor, Tensor>
    {
        public readonly Parameter scale;
        public readonly Inner inner;
        public readonly Tensor count;
        public readonly Parameter offset;

        public Outer(float fill) : base(nameof(Outer))
        {
            using var scope = torch.NewDisposeScope();
            scale = RegisterParameter("scale", torch.nn.Parameter(torch.full([1], fill)))!;
            inner = RegisterModule("inner", new Inner(fill + 1));
            count = RegisterBuffer("count", torch.full([], (long)fill, ScalarType.Int64))!;
            offset = RegisterParameter("offset", torch.nn.Parameter(torch.tensor(new float[] { fill, -fill, 2 * fill })))!;
        }

        public override Tensor forward(Tensor input) => inner.call(input * scale) + offset.sum();
    }

    private string _dir = "";

    [TestInitialize]
    public void Init()
    {
        _dir = Path.Combine(Path.GetTempPath(), "mt_statedict_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TestCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static void AssertSameValues(torch.nn.Module expected, torch.nn.Module actual)
    {
        var e = expected.state_dict();
        var a = actual.state_dict();
        CollectionAssert.AreEqual(e.Keys.ToList(), a.Keys.ToList());
        foreach (var (k, t) in e)
        {
            using var scope = torch.NewDisposeScope();
            Assert.AreEqual(t.dtype, a[k].dtype, k);
            CollectionAssert.AreEqual(t.shape, a[k].shape, k);
            CollectionAssert.AreEqual(t.to(ScalarType.Float64).ToArray<double>(), a[k].to(ScalarType.Float64).ToArray<double>(), k);
        }
    }

    [TestMethod]
    public void KeysAreDottedInPyTorchOrder()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Outer(1);
        // PyTorch 1.13 (computed once with /usr/bin/python3 on the equivalent torch.nn.Module):
        // ['scale', 'offset', 'count', 'inner.weight', 'inner.running'] and parameters ['scale', 'offset', 'inner.weight'].
        CollectionAssert.AreEqual(new[] { "scale", "offset", "count", "inner.weight", "inner.running" }, m.state_dict().Keys.ToList());
        CollectionAssert.AreEqual(new[] { "scale", "offset", "inner.weight" }, m.named_parameters().Select(e => e.name).ToList());
        Assert.AreSame(m.inner.weight, m.state_dict()["inner.weight"], "state_dict holds the module's own tensors");
    }

    [TestMethod]
    public void LoadStateDictRoundTrip()
    {
        using var scope = torch.NewDisposeScope();
        using var a = new Outer(3);
        using var b = new Outer(-1);
        var before = b.parameters().ToList();
        var result = b.load_state_dict(a.state_dict());
        Assert.AreEqual(0, result.missing.Count);
        Assert.AreEqual(0, result.unexpected.Count);
        AssertSameValues(a, b);
        CollectionAssert.AreEqual(new float[] { 3, -3, 6 }, b.offset.ToArray<float>());
        Assert.AreEqual(3L, b.count.item<long>());
        CollectionAssert.AreEqual(new float[] { 40, 40 }, b.inner.running.ToArray<float>());
        // same parameter objects, still trainable, and copies (not aliases) of a's data
        CollectionAssert.AreEqual(before, b.parameters().ToList());
        Assert.IsTrue(b.scale.requires_grad);
        using (torch.no_grad()) a.scale.fill_(100);
        Assert.AreEqual(3f, b.scale.ToArray<float>()[0]);
    }

    [TestMethod]
    public void StrictLoadListsMissingAndUnexpectedKeys()
    {
        using var scope = torch.NewDisposeScope();
        using var a = new Outer(3);
        using var b = new Outer(-1);
        var state = a.state_dict().Where(e => e.Key != "inner.running" && e.Key != "scale").ToDictionary(e => e.Key, e => e.Value);
        state["bogus"] = torch.ones(1);
        state["inner.extra"] = torch.ones(1);
        var ex = Assert.ThrowsException<InvalidOperationException>(() => b.load_state_dict(state));
        StringAssert.Contains(ex.Message, "missing keys: scale, inner.running");
        StringAssert.Contains(ex.Message, "unexpected keys: bogus, inner.extra");
        Assert.AreEqual(-1f, b.offset.ToArray<float>()[0], "a failed strict load changes nothing");

        var (missing, unexpected) = b.load_state_dict(state, strict: false);
        CollectionAssert.AreEqual(new[] { "scale", "inner.running" }, missing.ToList());
        CollectionAssert.AreEquivalent(new[] { "bogus", "inner.extra" }, unexpected.ToList());
        CollectionAssert.AreEqual(new float[] { 3, -3, 6 }, b.offset.ToArray<float>(), "non-strict load copies what matches");
        Assert.AreEqual(-1f, b.scale.ToArray<float>()[0], "a missing key keeps its value");
    }

    [TestMethod]
    public void ShapeMismatchNamesTheKey()
    {
        using var scope = torch.NewDisposeScope();
        using var a = new Outer(3);
        using var b = new Outer(-1);
        var state = a.state_dict().ToDictionary(e => e.Key, e => e.Value);
        state["inner.weight"] = torch.ones(3, 2);
        var ex = Assert.ThrowsException<InvalidOperationException>(() => b.load_state_dict(state, strict: false));
        StringAssert.Contains(ex.Message, "inner.weight: expected [2, 2], got [3, 2]");
        Assert.AreEqual(-1f, b.offset.ToArray<float>()[0], "nothing is copied when a shape mismatches");
    }

    [TestMethod]
    public void SafetensorsModuleRoundTrip()
    {
        using var scope = torch.NewDisposeScope();
        using var a = new Outer(2.5f);
        using var b = new Outer(0);
        string path = Path.Combine(_dir, "outer.safetensors");
        a.save_safetensors(path, new Dictionary<string, string> { ["model"] = "outer" });
        var keys = Safetensors.Load(path).Keys.ToList();
        CollectionAssert.AreEquivalent(a.state_dict().Keys.ToList(), keys);
        Assert.AreEqual("outer", Safetensors.ReadMetadata(path)["model"]);
        b.load_safetensors(path);
        AssertSameValues(a, b);

        // a file lacking a key: strict throws naming it, non-strict reports it
        var partial = a.state_dict().Where(e => e.Key != "offset").ToDictionary(e => e.Key, e => e.Value);
        string partialPath = Path.Combine(_dir, "partial.safetensors");
        Safetensors.Save(partial, partialPath);
        using var c = new Outer(0);
        var ex = Assert.ThrowsException<InvalidOperationException>(() => c.load_safetensors(partialPath));
        StringAssert.Contains(ex.Message, "offset");
        var (missing, unexpected) = c.load_safetensors(partialPath, strict: false);
        CollectionAssert.AreEqual(new[] { "offset" }, missing.ToList());
        Assert.AreEqual(0, unexpected.Count);
        Assert.AreEqual(2.5f, c.scale.ToArray<float>()[0]);
    }

    [TestMethod]
    public void ToFloat64KeepsParameterIdentity()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Outer(1.5f);
        var parameters = m.parameters().ToList();
        m.to(ScalarType.Float64);
        var after = m.parameters().ToList();
        Assert.AreEqual(parameters.Count, after.Count);
        for (int k = 0; k < parameters.Count; k++)
        {
            Assert.AreSame(parameters[k], after[k]);
            Assert.AreEqual(ScalarType.Float64, after[k].dtype);
            Assert.IsTrue(after[k].requires_grad);
        }
        Assert.AreEqual(ScalarType.Int64, m.count.dtype, "integer buffers keep their dtype");
        Assert.AreEqual(ScalarType.Float64, m.inner.running.dtype);
        CollectionAssert.AreEqual(new double[] { 1.5, -1.5, 3.0 }, m.offset.ToArray<double>());
        // the converted parameters still train
        var loss = m.call(torch.ones([2, 2], ScalarType.Float64)).sum();
        loss.backward();
        Assert.AreEqual(ScalarType.Float64, m.offset.grad!.dtype);
    }

    [TestMethod]
    public void DisposingTheModuleFreesItsTensors()
    {
        long baseline = torch.LiveTensorCount;
        var m = new Outer(1);
        Assert.AreEqual(baseline + 6, torch.LiveTensorCount, "3 parameters + 3 buffers (one non-persistent)");
        m.Dispose();
        Assert.AreEqual(baseline, torch.LiveTensorCount);
    }
}
