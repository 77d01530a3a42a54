// Tests share thread-local libtorch state and assert on the process-wide live-tensor count: run them one at a time.
[assembly: DoNotParallelize]

namespace MLNetMedSeg.Tests
{
    /// <summary>
    /// The library's process-wide settings, applied before any test as a MedSegContext applies them (many tests build
    /// networks without one): among them oneDNN off where its convolutions are wrong on this CPU (see OneDnn).
    /// </summary>
    [TestClass]
    public static class AssemblySetup
    {
        [AssemblyInitialize]
        public static void Initialize(TestContext _)
        {
            TorchRuntime.Initialize();
            Console.WriteLine($"oneDNN: {OneDnn.Check.Message}; enabled: {OneDnn.Enabled}");
        }
    }
}
