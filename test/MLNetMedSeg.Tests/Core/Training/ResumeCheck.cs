using MLNetMedSeg.Core;
using TorchSharp;

namespace MLNetMedSeg.Tests.Core.Training;

/// <summary>
/// Checks a stage's checkpoint/resume the same way for every stage: a straight run of <c>epochs</c>; a run in another
/// folder cancelled after epoch <c>killAfter</c> (from its epoch callback); then a resumed run in that folder — whose
/// epochs must be only the remaining ones and whose weights must equal the straight run's bit for bit.
/// </summary>
internal static class ResumeCheck
{
    /// <param name="fit">Fits with (checkpoint folder, epoch callback, token) and returns the fitted model's weights.</param>
    public static void Run(int epochs, int killAfter, Func<string, Action<int>?, CancellationToken, Dictionary<string, float[]>> fit)
    {
        string straight = NewFolder(), killed = NewFolder();
        try
        {
            var expected = fit(straight, null, CancellationToken.None);
            using (var cts = new CancellationTokenSource())
                Assert.ThrowsException<OperationCanceledException>(() => fit(killed, e => { if (e == killAfter) cts.Cancel(); }, cts.Token));
            Assert.IsTrue(File.Exists(Path.Combine(killed, "checkpoint.json")), "a checkpoint is on disk after the kill");
            var ran = new List<int>();
            var got = fit(killed, ran.Add, CancellationToken.None);
            CollectionAssert.AreEqual(Enumerable.Range(killAfter + 1, epochs - killAfter).ToArray(), ran, "only the remaining epochs run");
            CollectionAssert.AreEquivalent(expected.Keys.ToList(), got.Keys.ToList());
            foreach (var (k, v) in expected) CollectionAssert.AreEqual(v, got[k], $"weight {k} after resuming");
        }
        finally
        {
            Directory.Delete(straight, true);
            Directory.Delete(killed, true);
        }
    }

    public static Dictionary<string, float[]> Weights(torch.nn.Module m) =>
        m.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.to(torch.ScalarType.Float32).cpu().contiguous().ToArray<float>());

    private static string NewFolder()
    {
        var d = Path.Combine(Path.GetTempPath(), "medseg-resume-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
