using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="Gradients.Grad"/>. Each refused case below would otherwise reach libtorch inside TorchSharp's
/// autograd.grad and terminate the whole test process (c10::Error through a native frame without a catch; exit 134)
/// — so a missing guard shows as a crashed run, not as one failed test. The values are checked against analytic
/// derivatives; WGAN-GP's use (DeformationAttackLosses.GradientPenalty) has its own tests.
/// </summary>
[TestClass]
public sealed class GradientsTests
{
    private static Tensor Leaf(params double[] v) => tensor(v, requires_grad: true);

    [TestMethod]
    public void FirstOrderMatchesTheAnalyticDerivative()
    {
        using var scope = NewDisposeScope();
        // f(x, w) = Σ sin(x)·w² + x³  →  ∂f/∂x = cos(x)·w² + 3x², ∂f/∂w = 2·sin(x)·w
        var x = Leaf(0.3, -1.2, 2.0);
        var w = Leaf(1.5, 0.5, -2.0);
        var f = (x.sin() * w.pow(S(2)) + x.pow(S(3))).sum();
        var g = Gradients.Grad(f, [x, w]);
        var xs = x.detach(); var ws = w.detach();
        Assert.IsTrue(g[0].allclose(xs.cos() * ws.pow(S(2)) + S(3) * xs.pow(S(2)), rtol: 0, atol: 1e-12));
        Assert.IsTrue(g[1].allclose(S(2) * xs.sin() * ws, rtol: 0, atol: 1e-12));
        Assert.IsFalse(g[0].requires_grad, "without createGraph the gradient is a plain tensor");
        Assert.IsNull(x.grad, "autograd.grad does not accumulate into .grad");

        // A non-scalar output with grad_output v: the vector-Jacobian product vᵀJ; J of exp is diag(exp(x)).
        var y = x.exp();
        var v = tensor(new double[] { 1, -2, 0.5 });
        var vjp = Gradients.Grad(y, [x], gradOutput: v)[0];
        Assert.IsTrue(vjp.allclose(v * xs.exp(), rtol: 0, atol: 1e-12));

        // An output of one element but not rank 0 is a scalar too (as in PyTorch).
        var one = (x * x).sum().reshape(1, 1);
        Assert.IsTrue(Gradients.Grad(one, [x])[0].allclose(S(2) * xs, rtol: 0, atol: 1e-12));
    }

    [TestMethod]
    public void SecondOrderWithCreateGraphMatchesTheAnalyticDerivative()
    {
        using var scope = NewDisposeScope();
        // f = Σ x³·y → ∂f/∂x = 3x²y; ∂²f/∂x² (summed) = 6xy; ∂/∂y Σ ∂f/∂x = 3x²
        var x = Leaf(0.5, -1.5, 2.0);
        var y = Leaf(2.0, 1.0, -0.5);
        var f = (x.pow(S(3)) * y).sum();
        var gx = Gradients.Grad(f, [x], createGraph: true)[0];
        Assert.IsTrue(gx.requires_grad, "createGraph makes the gradient differentiable");
        var xs = x.detach(); var ys = y.detach();
        Assert.IsTrue(gx.allclose(S(3) * xs.pow(S(2)) * ys, rtol: 0, atol: 1e-12));
        var second = Gradients.Grad(gx.sum(), [x, y]);
        Assert.IsTrue(second[0].allclose(S(6) * xs * ys, rtol: 0, atol: 1e-12));
        Assert.IsTrue(second[1].allclose(S(3) * xs.pow(S(2)), rtol: 0, atol: 1e-12));
        // createGraph retains the graph by default (PyTorch's rule), so f can be differentiated again.
        var again = Gradients.Grad(f, [y])[0];
        Assert.IsTrue(again.allclose(xs.pow(S(3)), rtol: 0, atol: 1e-12));
        // A gradient penalty style objective: ‖∇ₓf‖² differentiated with backward() reaches the leaves.
        var h = (x.exp() * y).sum();
        var gh = Gradients.Grad(h, [x], createGraph: true)[0];
        gh.pow(S(2)).sum().backward();
        // ∂/∂x Σ (eˣy)² = 2e^{2x}y², ∂/∂y = 2e^{2x}y
        Assert.IsTrue(x.grad!.allclose(S(2) * (S(2) * xs).exp() * ys.pow(S(2)), rtol: 1e-12, atol: 1e-12));
        Assert.IsTrue(y.grad!.allclose(S(2) * (S(2) * xs).exp() * ys, rtol: 1e-12, atol: 1e-12));
    }

    [TestMethod]
    public void UnusedInputsAreAnErrorOrZeros()
    {
        using var scope = NewDisposeScope();
        var x = Leaf(1, 2);
        var unused = Leaf(3, 4, 5);
        var f = (x * x).sum();
        var e = Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(f, [x, unused], retainGraph: true, what: "probe"));
        StringAssert.Contains(e.Message, "probe: the output does not depend on input(s) 1");
        var g = Gradients.Grad(f, [x, unused], allowUnused: true);
        CollectionAssert.AreEqual(new double[] { 2, 4 }, g[0].ToArray<double>());
        CollectionAssert.AreEqual(new double[] { 0, 0, 0 }, g[1].ToArray<double>(), "an unused input gets zeros of its shape");
        Assert.AreEqual(ScalarType.Float64, g[1].dtype);

        // An output that is itself a leaf: its own gradient is 1, another leaf is unused.
        var leaf = tensor(2.0, requires_grad: true);
        var gl = Gradients.Grad(leaf, [leaf, x], allowUnused: true);
        Assert.AreEqual(1.0, gl[0].ToDouble());
        CollectionAssert.AreEqual(new double[] { 0, 0 }, gl[1].ToArray<double>());
        Assert.AreEqual(1.0, Gradients.Grad(leaf, [leaf])[0].ToDouble(), "a leaf output has no graph to free: a second gradient is fine");
    }

    [TestMethod]
    public void InputsThatWouldAbortTheProcessAreRefusedWithAClearMessage()
    {
        using var scope = NewDisposeScope();
        var x = Leaf(1, 2, 3);
        var plain = tensor(new double[] { 1, 2, 3 });

        // The output does not require grad (computed from tensors that do not, or detached).
        var e = Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad((plain * S(2)).sum(), [x], what: "probe"));
        StringAssert.Contains(e.Message, "probe: the output does not depend on anything that requires grad");
        Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad((x * S(2)).sum().detach(), [x]));

        // An input that does not require grad.
        e = Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad((x * plain).sum(), [plain]));
        StringAssert.Contains(e.Message, "input 0 does not require grad");
        e = Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad((x * plain).sum(), [x, plain]));
        StringAssert.Contains(e.Message, "input 1 does not require grad");

        // A non-scalar output without grad_output.
        e = Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(x * S(2), [x]));
        StringAssert.Contains(e.Message, "the output has shape [3]; a gradient needs a scalar output or a grad_output");

        // grad_output of another shape, dtype or (here: a scalar for a vector) rank.
        var a = Assert.ThrowsException<ArgumentException>(() => Gradients.Grad(x * S(2), [x], gradOutput: ones(new long[] { 4 }, ScalarType.Float64)));
        StringAssert.Contains(a.Message, "grad_output has shape [4], the output [3]");
        Assert.AreEqual("gradOutput", a.ParamName);
        a = Assert.ThrowsException<ArgumentException>(() => Gradients.Grad(x * S(2), [x], gradOutput: ones(new long[] { 3 }, ScalarType.Float32)));
        StringAssert.Contains(a.Message, "grad_output is Float32");
        Assert.ThrowsException<ArgumentException>(() => Gradients.Grad(x * S(2), [x], gradOutput: tensor(1.0)));

        // A complex scalar output without grad_output.
        var z = (x.to(ScalarType.ComplexFloat64) * S(2)).sum();
        Assert.IsTrue(z.requires_grad);
        StringAssert.Contains(Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(z, [x])).Message, "needs a real output");

        // Under no_grad and inference mode.
        var f = (x * x).sum();
        using (no_grad())
            StringAssert.Contains(Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(f, [x])).Message, "gradients are disabled here");
        using (inference_mode())
            Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(f, [x]));

        // No inputs, null arguments.
        Assert.ThrowsException<ArgumentException>(() => Gradients.Grad(f, Array.Empty<Tensor>()));
        Assert.ThrowsException<ArgumentNullException>(() => Gradients.Grad(f, [x, null!]));
        Assert.ThrowsException<ArgumentNullException>(() => Gradients.Grad(null!, [x]));

        // None of the refusals touched the graph: f is still differentiable.
        CollectionAssert.AreEqual(new double[] { 2, 4, 6 }, Gradients.Grad(f, [x])[0].ToArray<double>());
    }

    [TestMethod]
    public void AGraphFreedByAnEarlierGradientIsRefused()
    {
        using var scope = NewDisposeScope();
        var x = Leaf(1, 2);
        var f = (x * x).sum();
        Gradients.Grad(f, [x], retainGraph: true);           // retained: may be differentiated again
        Gradients.Grad(f, [x]);                              // the last one frees the graph
        var e = Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(f, [x]));
        StringAssert.Contains(e.Message, "the graph of this output was freed by an earlier gradient");
        Assert.ThrowsException<InvalidOperationException>(() => Gradients.Grad(f, [x], retainGraph: true));

        // createGraph with retainGraph: false would free the graph the returned gradient runs through.
        var h = (x.exp() * x).sum();
        var a = Assert.ThrowsException<ArgumentException>(() => Gradients.Grad(h, [x], retainGraph: false, createGraph: true));
        Assert.AreEqual("retainGraph", a.ParamName);
        // … and nothing was freed by the refusal.
        var gh = Gradients.Grad(h, [x], createGraph: true)[0];
        var xs = x.detach();
        // d²/dx² (x·eˣ) = (x + 2)·eˣ
        Assert.IsTrue(Gradients.Grad(gh.sum(), [x])[0].allclose((xs + S(2)) * xs.exp(), rtol: 1e-12, atol: 1e-12));
    }
}
