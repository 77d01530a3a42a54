using MLNetMedSeg.Tests.Core;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>The CLI, like the library (MLNetMedSeg.Tests' ScalarLifetimeTests), never makes a temporary TorchSharp Scalar.</summary>
[TestClass]
public sealed class ScalarLifetimeTests
{
    [TestMethod]
    public void CliMakesNoTemporaryScalars()
    {
        var sites = ScalarConversionScanner.Scan(typeof(MedsegCli).Assembly.Location);
        Assert.AreEqual(0, sites.Count,
            "medseg hands numbers to TorchSharp through temporary Scalars (write S(v) from MLNetMedSeg.Core.Scalars, or " +
            $"torch.tensor(v) for a tensor):{Environment.NewLine}{ScalarConversionScanner.Describe(sites)}");
    }
}
