namespace MLNetMedSeg.Tests.Diffusion;

/// <summary>
/// The two-sample Kolmogorov–Smirnov test used by the mask-diffusion learning tests: D = sup |F₁ − F₂| of the two
/// empirical distribution functions, and the asymptotic p-value Q_KS(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²} with
/// λ = (√nₑ + 0.12 + 0.11/√nₑ)·D, nₑ = n·m/(n + m) (Stephens' small-sample correction, as Numerical Recipes' kstwo).
/// </summary>
internal static class KolmogorovSmirnov
{
    /// <summary>The KS statistic D of two samples.</summary>
    public static double Statistic(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        var x = a.OrderBy(v => v).ToArray();
        var y = b.OrderBy(v => v).ToArray();
        int i = 0, j = 0;
        double d = 0;
        while (i < x.Length && j < y.Length)
        {
            double v = Math.Min(x[i], y[j]);
            while (i < x.Length && x[i] <= v) i++;
            while (j < y.Length && y[j] <= v) j++;
            d = Math.Max(d, Math.Abs((double)i / x.Length - (double)j / y.Length));
        }
        return d;
    }

    /// <summary>Q_KS(λ), the Kolmogorov distribution's survival function.</summary>
    public static double Q(double lambda)
    {
        if (lambda < 1e-3) return 1;
        double sum = 0;
        for (int k = 1; k <= 100; k++)
        {
            double term = Math.Exp(-2.0 * k * k * lambda * lambda);
            sum += (k % 2 == 1 ? 1 : -1) * term;
            if (term < 1e-16) break;
        }
        return Math.Clamp(2 * sum, 0, 1);
    }

    /// <summary>The asymptotic two-sided p-value of the two-sample test and D.</summary>
    public static (double P, double D) Test(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        if (a.Count == 0 || b.Count == 0) throw new ArgumentException("both samples need values");
        double d = Statistic(a, b);
        double ne = (double)a.Count * b.Count / (a.Count + b.Count), s = Math.Sqrt(ne);
        return (Q((s + 0.12 + 0.11 / s) * d), d);
    }
}

[TestClass]
public sealed class MaskDiffusionKolmogorovSmirnovTests
{
    [TestMethod]
    public void KnownValues()
    {
        // The classic critical values: Q(1.3581) = 0.05, Q(1.6276) = 0.01; Q(0.5) = 0.96394524 (python: 2Σ(−1)^{k−1}e^{−2k²λ²}).
        Assert.AreEqual(0.0499996304, KolmogorovSmirnov.Q(1.3581), 1e-9);
        Assert.AreEqual(0.0100015373, KolmogorovSmirnov.Q(1.6276), 1e-9);
        Assert.AreEqual(0.9639452437, KolmogorovSmirnov.Q(0.5), 1e-9);
        // x = {1,2,3,4}, y = {3,4,5,6,7}: at 4, F_x = 1 and F_y = 0.4 → D = 0.6; nₑ = 20/9,
        // λ = (1.490712 + 0.12 + 0.073790)·0.6 = 1.0107013, p = 0.2587047.
        var (p, d) = KolmogorovSmirnov.Test([1, 2, 3, 4], [3, 4, 5, 6, 7]);
        Assert.AreEqual(0.6, d, 1e-12);
        Assert.AreEqual(0.2587046967, p, 1e-9);
        // Identical samples: D = 0, p = 1; disjoint large samples: p ≈ 0.
        var same = Enumerable.Range(0, 50).Select(i => i / 50.0).ToArray();
        Assert.AreEqual((1.0, 0.0), KolmogorovSmirnov.Test(same, same));
        Assert.IsTrue(KolmogorovSmirnov.Test(same, same.Select(v => v + 2).ToArray()).P < 1e-10);
        // Ties across samples are stepped together.
        Assert.AreEqual(0.5, KolmogorovSmirnov.Statistic([1, 1, 2, 2], [2, 2, 2, 2]), 1e-12);
    }
}
