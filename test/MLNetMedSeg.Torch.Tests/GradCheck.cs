namespace MLNetMedSeg.Torch.Tests;

/// <summary>
/// Float64 gradient checker: compares the autograd gradient of a function with central finite differences.
/// The function's output is reduced to a scalar as sum(f(x) * w) with fixed, distinct, non-zero weights w, so every
/// output element contributes with its own weight. Perturbed inputs are built only with core operations
/// (ToArray, torch.tensor, *, sum), so the numeric side does not depend on the code under test beyond f itself.
/// </summary>
internal static class GradCheck
{
    /// <summary>
    /// Checks d(sum(f(inputs) * w))/d(inputs[i]) for every input. Inputs must be float64 leaves with requires_grad.
    /// Each element passes when |analytic - numeric| &lt;= atol + rtol * |numeric|. Every input must receive a non-zero
    /// gradient somewhere (so that a check can never pass vacuously).
    /// </summary>
    public static void Check(Func<Tensor[], Tensor> f, Tensor[] inputs, double eps = 1e-6, double rtol = 1e-5, double atol = 1e-7, string name = "")
    {
        using var scope = torch.NewDisposeScope();
        foreach (var x in inputs)
        {
            Assert.AreEqual(ScalarType.Float64, x.dtype, $"{name}: gradcheck needs float64 inputs");
            Assert.IsTrue(x.requires_grad, $"{name}: gradcheck inputs must require grad");
        }
        var output = f(inputs);
        var weights = Weights(output.numel());
        var w = torch.tensor(weights, output.shape);
        var loss = (output * w).sum();
        var grads = torch.autograd.grad(loss, inputs, allow_unused: true);

        var failures = new List<string>();
        int checkedCount = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            var shape = inputs[i].shape;
            var data = inputs[i].detach().ToArray<double>();
            var analytic = grads[i]?.ToArray<double>() ?? new double[data.Length];
            Assert.IsTrue(analytic.Any(v => v != 0), $"{name}: input {i} receives no gradient at all; the check would be vacuous");
            for (int k = 0; k < data.Length; k++)
            {
                double keep = data[k];
                data[k] = keep + eps;
                double fp = Evaluate(f, inputs, i, data, shape, weights);
                data[k] = keep - eps;
                double fm = Evaluate(f, inputs, i, data, shape, weights);
                data[k] = keep;
                double numeric = (fp - fm) / (2 * eps);
                double err = Math.Abs(analytic[k] - numeric);
                checkedCount++;
                if (!(err <= atol + rtol * Math.Abs(numeric)) && failures.Count < 10)
                    failures.Add($"input {i} element {k}: analytic {analytic[k]:R}, numeric {numeric:R}, |diff| {err:E3}");
            }
        }
        if (failures.Count > 0)
            Assert.Fail($"{name}: gradient check failed\n" + string.Join("\n", failures));
        Assert.IsTrue(checkedCount > 0);
    }

    /// <summary>The reduction weights 0.5 + ((7k) mod 11) / 11: distinct-ish, non-zero.</summary>
    internal static double[] Weights(long n)
    {
        var w = new double[n];
        for (long k = 0; k < n; k++) w[k] = 0.5 + (k * 7 % 11) / 11.0;
        return w;
    }

    private static double Evaluate(Func<Tensor[], Tensor> f, Tensor[] inputs, int which, double[] data, long[] shape, double[] weights)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var args = (Tensor[])inputs.Clone();
        args[which] = torch.tensor(data, shape);
        var y = f(args);
        var w = torch.tensor(weights, y.shape);
        return (y * w).sum().item<double>();
    }
}

/// <summary>Deterministic test data shared with the Python scripts that produced the reference values.</summary>
internal static class NNData
{
    /// <summary>v[k] = ((k * a) mod m) / m - 0.5, as Python's <c>[((k*a)%m)/m - 0.5 for k in range(n)]</c>.</summary>
    internal static double[] Seq(long n, long a, long m)
    {
        var v = new double[n];
        for (long k = 0; k < n; k++) v[k] = (double)(k * a % m) / m - 0.5;
        return v;
    }

    /// <summary>A float64 tensor of the given shape holding Seq(numel, a, m) * scale + offset.</summary>
    internal static Tensor T(long a, long m, long[] shape, double scale = 1, double offset = 0, bool requires_grad = false)
    {
        long n = 1;
        foreach (var s in shape) n *= s;
        var v = Seq(n, a, m);
        for (int k = 0; k < v.Length; k++) v[k] = v[k] * scale + offset;
        return torch.tensor(v, shape, requires_grad: requires_grad);
    }

    internal static void AssertClose(double[] expected, Tensor actual, double tol = 1e-12, string what = "")
    {
        var a = actual.dtype == ScalarType.Float64 ? actual.ToArray<double>() : actual.to(ScalarType.Float64).ToArray<double>();
        Assert.AreEqual(expected.Length, a.Length, $"{what}: element count");
        for (int k = 0; k < a.Length; k++)
            Assert.IsTrue(Math.Abs(expected[k] - a[k]) <= tol * Math.Max(1, Math.Abs(expected[k])),
                $"{what}: element {k}: expected {expected[k]:R}, got {a[k]:R}");
    }
}
