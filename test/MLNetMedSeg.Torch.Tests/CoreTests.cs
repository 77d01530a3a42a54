namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class CoreTests
{
    [TestMethod]
    public void VersionAndThreads()
    {
        // Debian's 1.13 on CI and these machines; a CUDA PyTorch's 2.x (with "+cuda") where MEDSEG_TORCH_DIR points at one.
        var m = System.Text.RegularExpressions.Regex.Match(torch.__version__, @"^(\d+)\.(\d+)\.(\d+)(\+cuda)?$");
        Assert.IsTrue(m.Success, $"libtorch version '{torch.__version__}' is not MAJOR.MINOR.PATCH[+cuda]");
        var v = new Version(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value));
        Assert.IsTrue(v >= new Version(1, 13), $"libtorch {torch.__version__} is older than 1.13, the oldest the shim supports");
        if (torch.cuda.is_available()) Assert.IsTrue(m.Groups[4].Success, "a CUDA device is available, so the shim must be a CUDA build");
        Assert.AreEqual(Math.Max(1, Environment.ProcessorCount), torch.get_num_threads());
    }

    [TestMethod]
    public void CreationAndReadBack()
    {
        using var scope = torch.NewDisposeScope();
        var t = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, t.shape);
        Assert.AreEqual(ScalarType.Float32, t.dtype);
        Assert.AreEqual(torch.CPU, t.device);
        var u = (t * 2 + 1) / 2 - t;
        CollectionAssert.AreEqual(new float[] { 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f }, u.ToArray<float>());
        Assert.AreEqual(21.0, t.sum().item<double>(), 1e-6);
        Assert.AreEqual(3.5f, t.mean().item<float>(), 1e-6f);
        CollectionAssert.AreEqual(new float[] { 7, 7 }, torch.full([2], 7).ToArray<float>());
        CollectionAssert.AreEqual(new long[] { 0, 2, 4 }, torch.arange(0, 6, 2).ToArray<long>());
        CollectionAssert.AreEqual(new float[] { 1, 0, 0, 1 }, torch.eye(2).ToArray<float>());
        CollectionAssert.AreEqual(new float[] { 0, 0.5f, 1 }, torch.linspace(0, 1, 3).ToArray<float>());
    }

    [TestMethod]
    public void FactoriesHonourRequiresGrad()
    {
        using var scope = torch.NewDisposeScope();
        Assert.IsTrue(torch.zeros([2], requires_grad: true).requires_grad);
        Assert.IsTrue(torch.ones([2], requires_grad: true).requires_grad);
        Assert.IsTrue(torch.full([2], 3.0, requires_grad: true).requires_grad);
        Assert.IsTrue(torch.tensor(1.5, requires_grad: true).requires_grad);
        Assert.IsTrue(torch.linspace(0, 1, 3, requires_grad: true).requires_grad);
        Assert.IsTrue(torch.zeros_like(torch.ones(2), requires_grad: true).requires_grad);
        Assert.IsFalse(torch.zeros([2]).requires_grad);
    }

    [TestMethod]
    public void ShapeMismatchThrowsTorchExceptionWithLibtorchText()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.ones(2, 3);
        var b = torch.ones(4, 5);
        var ex = Assert.ThrowsException<TorchException>(() => a + b);
        StringAssert.Contains(ex.Message, "must match the size");
        // the process lives on and the next op works
        Assert.AreEqual(6.0, a.sum().item<double>());
    }

    [TestMethod]
    public void DisposedTensorThrowsObjectDisposed()
    {
        var t = torch.ones(2);
        t.Dispose();
        Assert.ThrowsException<ObjectDisposedException>(() => t.sum());
        t.Dispose(); // idempotent
    }

    [TestMethod]
    public void DisposeScopeFreesTemporariesAndKeepsMovedOut()
    {
        long baseline = torch.LiveTensorCount;
        Tensor kept;
        using (torch.NewDisposeScope())
        {
            var a = torch.ones(3);
            var b = a * 3;
            kept = (b + a).MoveToOuterDisposeScope();
            Assert.AreEqual(baseline + 3, torch.LiveTensorCount);
        }
        Assert.AreEqual(baseline + 1, torch.LiveTensorCount);
        CollectionAssert.AreEqual(new float[] { 4, 4, 4 }, kept.ToArray<float>());
        kept.Dispose();
        Assert.AreEqual(baseline, torch.LiveTensorCount);
    }

    [TestMethod]
    public void BackwardGivesGradients()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        CollectionAssert.AreEqual(new double[] { 2, 4, 6 }, x.grad!.ToArray<double>());
        var x2 = torch.tensor(new double[] { 1, 2 }, requires_grad: true);
        var g = torch.autograd.grad((x2 * x2 * x2).sum(), [x2]);
        CollectionAssert.AreEqual(new double[] { 3, 12 }, g[0]!.ToArray<double>());
        Assert.IsNull(x2.grad, "autograd.grad must not accumulate into .grad");
    }

    [TestMethod]
    public void GeneratorsAreReproducibleAndIndependent()
    {
        using var scope = torch.NewDisposeScope();
        using var g1 = new Generator(42);
        using var g2 = new Generator(42);
        var a = torch.randn([5], generator: g1).ToArray<float>();
        torch.randn([7]); // global stream does not disturb g2
        var b = torch.randn([5], generator: g2).ToArray<float>();
        CollectionAssert.AreEqual(a, b);
    }

    [TestMethod]
    public void GradModeScopes()
    {
        Assert.IsTrue(torch.is_grad_enabled());
        using (torch.no_grad())
        {
            Assert.IsFalse(torch.is_grad_enabled());
            using (torch.enable_grad()) Assert.IsTrue(torch.is_grad_enabled());
            Assert.IsFalse(torch.is_grad_enabled());
        }
        Assert.IsTrue(torch.is_grad_enabled());
        using (torch.inference_mode())
        {
            Assert.IsTrue(torch.is_inference_mode_enabled());
            using var t = torch.ones(2);
            Assert.IsTrue(t.is_inference());
        }
        Assert.IsFalse(torch.is_inference_mode_enabled());
    }
}
