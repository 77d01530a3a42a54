using MLNetMedSeg.Tests.Core;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// The CLI, like the library (MLNetMedSeg.Tests' ScalarLifetimeTests), never makes a temporary TorchSharp Scalar: neither
/// through a number operand nor through a TorchSharp method that makes one inside (<c>a + b</c>, <c>t.ToDouble()</c>, …;
/// <see cref="TorchSharpScalarTemporaries"/>), the allowlisted ones (ScalarConversionScanner.Allowlist) aside.
/// </summary>
[TestClass]
public sealed class ScalarLifetimeTests
{
    [TestMethod]
    public void CliMakesNoTemporaryScalars()
    {
        var sites = ScalarConversionScanner.Scan(typeof(MedsegCli).Assembly.Location);
        Assert.AreEqual(0, sites.Count,
            "medseg hands numbers to TorchSharp through temporary Scalars (write S(v) from MLNetMedSeg.Core.Scalars, or " +
            "torch.tensor(v) for a tensor), or calls TorchSharp methods that make one inside (write a.Plus(b), t.DoubleValue(), … " +
            $"from MLNetMedSeg.Core.Scalars):{Environment.NewLine}{ScalarConversionScanner.Describe(sites)}");
    }
}
