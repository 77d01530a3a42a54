using MLNetMedSeg.Core;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Evaluation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Attacks;

/// <summary>One class (organ) of a <see cref="DeformationAttackReport"/>.</summary>
/// <param name="Class">Class index (1..C; 1 for a binary segmenter).</param>
/// <param name="DiceBefore">Mean Dice of S₀ against the ground truth, over the attacks whose ground truth holds the class.</param>
/// <param name="DiceAfter">Mean Dice of S_DV against the ground truth moved by D, over the same attacks.</param>
/// <param name="SuccessThreshold">0.7 × <see cref="DiceBefore"/>: the Dice of a 30% decrease (Table 1's "U-Net 30% decrease").</param>
/// <param name="Attacked">True when <see cref="DiceAfter"/> ≤ <see cref="SuccessThreshold"/>, the paper's criterion for the class.</param>
/// <param name="SuccessRate">Fraction of these attacks whose own Dice fell by at least 30%.</param>
/// <param name="Attacks">The number of attacks (image × sample) holding the class.</param>
public sealed record DeformationAttackClassReport(
    [property: JsonPropertyName("class")] int Class,
    [property: JsonPropertyName("dice_before")] double DiceBefore,
    [property: JsonPropertyName("dice_after")] double DiceAfter,
    [property: JsonPropertyName("dice_30pct_decrease")] double SuccessThreshold,
    [property: JsonPropertyName("attacked")] bool Attacked,
    [property: JsonPropertyName("success_rate")] double SuccessRate,
    [property: JsonPropertyName("attacks")] int Attacks);

/// <summary>
/// How a deformation attack did (paper 002, §4.2 and Table 1). Per class: the segmenter's mean Dice on the original
/// images against the ground truth (before) and on the attacked images against the ground truth moved by the same
/// D (after: a deformation moves the organ, and the segmenter is only wrong where it does not follow), over the attacks
/// whose ground truth holds the class; a class is attacked when the mean falls by 30% (Table 1). Top level: the
/// means over classes, the success rate (the fraction of attacks, image × sample, whose Dice averaged over the
/// classes present fell by at least 30%) and the perceptibility p = mean |I_DV − I₀| (Eq. 7, averaged over pixels,
/// channels and attacks; images in [0, 1]).
/// </summary>
public sealed class DeformationAttackReport
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>ξ the generator was trained for.</summary>
    [JsonPropertyName("xi")] public double Xi { get; init; }

    /// <summary>D+V, D only or V only.</summary>
    [JsonPropertyName("variant")] public string Variant { get; init; } = "";

    /// <summary>Images attacked.</summary>
    [JsonPropertyName("images")] public int Images { get; init; }

    /// <summary>Attacks per image (k).</summary>
    [JsonPropertyName("samples")] public int Samples { get; init; }

    /// <summary>Mean over classes of the per-class Dice before the attack.</summary>
    [JsonPropertyName("dice_before")] public double DiceBefore { get; init; }

    /// <summary>Mean over classes of the per-class Dice after the attack.</summary>
    [JsonPropertyName("dice_after")] public double DiceAfter { get; init; }

    /// <summary>Fraction of attacks that lowered their image's Dice by at least 30%.</summary>
    [JsonPropertyName("success_rate")] public double SuccessRate { get; init; }

    /// <summary>Perceptibility p (Eq. 7).</summary>
    [JsonPropertyName("p")] public double P { get; init; }

    /// <summary>Per class, in class order.</summary>
    [JsonPropertyName("per_class")] public IReadOnlyList<DeformationAttackClassReport> PerClass { get; init; } = [];

    /// <summary>The report as indented JSON (snake_case names: dice_before, dice_after, success_rate, p, per_class, ...).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>A one-row Markdown summary: per-class Dice after, success rate and p.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"ξ = {Xi} ({Variant}): Dice {DiceBefore:F4} → {DiceAfter:F4}, success rate {SuccessRate:P1}, p = {P:F4}");
        foreach (var c in PerClass) sb.Append(CultureInfo.InvariantCulture, $"; class {c.Class} {c.DiceBefore:F4} → {c.DiceAfter:F4}");
        return sb.ToString();
    }

    /// <summary>Collects per-attack Dice and perceptibility batch by batch.</summary>
    internal sealed class Accumulator(int numClasses, int samples)
    {
        private const double Decrease = 0.7;
        private readonly List<(double Before, double After)>[] _perClass = Enumerable.Range(0, numClasses - 1).Select(_ => new List<(double, double)>()).ToArray();
        private double _pSum;
        private int _attacks, _successes, _scored;

        /// <summary>
        /// One batch of attacks: predictions on I₀ and ground truth (repeated per sample), predictions on I_DV and the
        /// deformed ground truth, and mean |I_DV − I₀| per attack [B·k].
        /// </summary>
        public void Add(Tensor before, Tensor gt, Tensor after, Tensor deformedGt, Tensor perceptibility)
        {
            using var scope = NewDisposeScope();
            var b = Dice(before, gt);
            var a = Dice(after, deformedGt);
            var p = perceptibility.to(ScalarType.Float64).cpu().ToArray<double>();
            int k = _perClass.Length;
            for (int i = 0; i < p.Length; i++)
            {
                _pSum += p[i];
                _attacks++;
                double sb = 0, sa = 0;
                int present = 0;
                for (int c = 0; c < k; c++)
                {
                    var (db, pb) = b[i * k + c];
                    var (da, pa) = a[i * k + c];
                    if (!pb || !pa) continue;
                    _perClass[c].Add((db, da));
                    sb += db;
                    sa += da;
                    present++;
                }
                if (present == 0) continue;
                _scored++;
                if (sb > 0 && sa <= Decrease * sb) _successes++;
            }
        }

        /// <summary>Dice and "the target holds the class" per attack and class, row-major [B·k, C].</summary>
        private (double Dice, bool Present)[] Dice(Tensor prediction, Tensor target)
        {
            using var scope = NewDisposeScope();
            var (tp, fp, fn, _) = numClasses == 2 && target.dim() == 4
                ? SegmentationMetrics.GetStats(prediction, target)
                : SegmentationMetrics.GetStats(prediction, target, numClasses);
            var TP = tp.cpu().contiguous().ToArray<long>();
            var FP = fp.cpu().contiguous().ToArray<long>();
            var FN = fn.cpu().contiguous().ToArray<long>();
            var r = new (double, bool)[TP.Length];
            for (int j = 0; j < TP.Length; j++)
            {
                long den = 2 * TP[j] + FP[j] + FN[j];
                r[j] = (den == 0 ? 1.0 : 2.0 * TP[j] / den, TP[j] + FN[j] > 0);
            }
            return r;
        }

        public DeformationAttackReport Result(double xi, DeformationAttackVariant variant)
        {
            var classes = _perClass.Select((l, c) =>
            {
                double before = l.Count == 0 ? double.NaN : l.Average(e => e.Before);
                double after = l.Count == 0 ? double.NaN : l.Average(e => e.After);
                int ok = l.Count(e => e.Before > 0 && e.After <= Decrease * e.Before);
                return new DeformationAttackClassReport(c + 1, before, after, Decrease * before, after <= Decrease * before,
                    l.Count == 0 ? double.NaN : (double)ok / l.Count, l.Count);
            }).ToList();
            var scored = classes.Where(c => c.Attacks > 0).ToList();
            return new DeformationAttackReport
            {
                Xi = xi,
                Variant = variant.ToString(),
                Images = _attacks / samples,
                Samples = samples,
                DiceBefore = scored.Count == 0 ? double.NaN : scored.Average(c => c.DiceBefore),
                DiceAfter = scored.Count == 0 ? double.NaN : scored.Average(c => c.DiceAfter),
                SuccessRate = _scored == 0 ? double.NaN : (double)_successes / _scored,
                P = _attacks == 0 ? double.NaN : _pSum / _attacks,
                PerClass = classes,
            };
        }
    }
}
