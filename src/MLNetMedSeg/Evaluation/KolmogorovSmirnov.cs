namespace MLNetMedSeg.Evaluation;

/// <summary>The result of a two-sample Kolmogorov–Smirnov test.</summary>
/// <param name="Statistic">D = sup_x |F₁(x) − F₂(x)|, the largest gap between the two empirical distribution functions (0..1).</param>
/// <param name="PValue">The asymptotic p-value of D under "both samples come from one continuous distribution".</param>
/// <param name="Count1">Size of the first sample.</param>
/// <param name="Count2">Size of the second sample.</param>
public sealed record KolmogorovSmirnovResult(double Statistic, double PValue, int Count1, int Count2);

/// <summary>
/// The two-sample Kolmogorov–Smirnov test, e.g. of generated masks' foreground fractions against real ones. The
/// p-value is the asymptotic Kolmogorov distribution with the small-sample correction of Stephens (1970, as in
/// Numerical Recipes' <c>kstwo</c>): p = Q_KS((√nₑ + 0.12 + 0.11/√nₑ)·D), nₑ = n₁n₂/(n₁ + n₂),
/// Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2j²λ²}. It is accurate for nₑ ≳ 4 (scipy's <c>ks_2samp</c> computes exact
/// p-values for small samples instead, so tiny samples differ a little). Ties are handled as the definition says
/// (both functions step at a tied value before D is taken).
/// </summary>
public static class KolmogorovSmirnov
{
    /// <summary>The two-sample test of <paramref name="sample1"/> against <paramref name="sample2"/>.</summary>
    /// <exception cref="ArgumentException">An empty sample, or a NaN value.</exception>
    public static KolmogorovSmirnovResult TwoSample(IReadOnlyCollection<double> sample1, IReadOnlyCollection<double> sample2)
    {
        ArgumentNullException.ThrowIfNull(sample1);
        ArgumentNullException.ThrowIfNull(sample2);
        if (sample1.Count == 0 || sample2.Count == 0) throw new ArgumentException("both samples need at least one value");
        if (sample1.Any(double.IsNaN) || sample2.Any(double.IsNaN)) throw new ArgumentException("the samples hold NaN values");
        var a = sample1.Order().ToArray();
        var b = sample2.Order().ToArray();
        int i = 0, j = 0;
        double d = 0;
        while (i < a.Length && j < b.Length)
        {
            double x = Math.Min(a[i], b[j]);
            while (i < a.Length && a[i] == x) i++;
            while (j < b.Length && b[j] == x) j++;
            d = Math.Max(d, Math.Abs((double)i / a.Length - (double)j / b.Length));
        }
        double ne = (double)a.Length * b.Length / (a.Length + b.Length);
        double sq = Math.Sqrt(ne);
        return new KolmogorovSmirnovResult(d, KolmogorovQ((sq + 0.12 + 0.11 / sq) * d), a.Length, b.Length);
    }

    /// <summary>
    /// The Kolmogorov distribution's survival function Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2j²λ²} (1 at λ = 0,
    /// decreasing to 0; Q_KS(1.358) ≈ 0.05).
    /// </summary>
    public static double KolmogorovQ(double lambda)
    {
        if (double.IsNaN(lambda)) throw new ArgumentException("lambda is NaN", nameof(lambda));
        if (lambda < 0.2) return 1; // the series converges slowly here and the value is 1 to double precision
        double sum = 0, sign = 1, previous = 0;
        for (int k = 1; k <= 100; k++)
        {
            double term = sign * Math.Exp(-2.0 * k * k * lambda * lambda);
            sum += term;
            if (Math.Abs(term) <= 1e-12 * Math.Abs(sum) || Math.Abs(term) <= 1e-16 * Math.Abs(previous)) break;
            previous = term;
            sign = -sign;
        }
        return Math.Clamp(2 * sum, 0, 1);
    }
}
