using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// What every CLI test class shares: a fresh temporary folder per test (<see cref="_dir"/>, deleted afterwards), a way to
/// run <c>medseg</c> in-process, and synthetic data folders.
/// </summary>
public abstract class CliTestBase
{
    /// <summary>This test's temporary folder.</summary>
    protected string _dir = "";

    [TestInitialize]
    public void CreateTempFolder() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"medseg-{GetType().Name}-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void DeleteTempFolder() => Directory.Delete(_dir, recursive: true);

    /// <summary>Runs one medseg command line in-process: (exit code, stdout, stderr).</summary>
    protected static (int code, string stdout, string stderr) Medseg(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = MedsegCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>Where and how bright the discs of <see cref="MakeData"/> are (ranges are [lo, hi) as Random.Next).</summary>
    protected sealed record DiscSpec(int Height = 20, int Width = 24, int CxLo = 7, int CxHi = 17, int CyLo = 7, int CyHi = 13,
        int RLo = 3, int RHi = 6, int Inside = 190, int Outside = 70, int Noise = 30);

    /// <summary>
    /// n RGB images (case00.png …) with a bright disc on a dark noisy background in DIR/images, and their 0/255 masks
    /// in DIR/masks; the default spec gives 20 (h) × 24 (w) images.
    /// </summary>
    protected static void MakeData(string dir, int n, int seed, DiscSpec? spec = null)
    {
        var s = spec ?? new DiscSpec();
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        Directory.CreateDirectory(Path.Combine(dir, "masks"));
        var rng = new Random(seed);
        int h = s.Height, w = s.Width;
        for (int i = 0; i < n; i++)
        {
            int cx = rng.Next(s.CxLo, s.CxHi), cy = rng.Next(s.CyLo, s.CyHi), r = rng.Next(s.RLo, s.RHi);
            var img = new byte[h * w * 3];
            var mask = new byte[h * w];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                    mask[y * w + x] = inside ? (byte)255 : (byte)0;
                    byte v = (byte)Math.Clamp((inside ? s.Inside : s.Outside) + rng.Next(-s.Noise, s.Noise), 0, 255);
                    img[(y * w + x) * 3] = v;
                    img[(y * w + x) * 3 + 1] = (byte)(v / 2);
                    img[(y * w + x) * 3 + 2] = (byte)(v / 3);
                }
            ImageIO.WritePng(Path.Combine(dir, "images", $"case{i:D2}.png"), img, w, h, 3);
            ImageIO.WritePng(Path.Combine(dir, "masks", $"case{i:D2}.png"), mask, w, h, 1);
        }
    }
}

/// <summary>
/// A CLI test class whose tests run libtorch on one thread (restored after the class): tiny networks gain nothing from
/// more, and on a shared 2-core machine spinning threads slow them down many times over.
/// </summary>
public abstract class OneThreadCliTestBase : CliTestBase
{
    private static int _threads;

    [ClassInitialize(InheritanceBehavior.BeforeEachDerivedClass)]
    public static void OneThread(TestContext _)
    {
        _threads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(1);
    }

    [ClassCleanup(InheritanceBehavior.BeforeEachDerivedClass, ClassCleanupBehavior.EndOfClass)]
    public static void RestoreThreads() => TorchSharp.torch.set_num_threads(_threads);
}
