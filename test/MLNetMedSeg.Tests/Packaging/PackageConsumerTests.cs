using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Tests.Core.MLNet;

namespace MLNetMedSeg.Tests.Packaging;

/// <summary>
/// The NuGet packages as a company would consume them: packs MLNetMedSeg and MLNetMedSeg.Testing into a folder feed
/// under a version no earlier run used (so a cached package of the same version can never stand in), trains and saves
/// a tiny model with the library, then builds examples/EnterpriseApp and examples/ModelTests — copied out of the
/// repository, so none of its build files reach them — against that feed, runs the app and the model tests, and checks
/// their results against the library's own in-process predictions and metrics.
/// </summary>
[TestClass]
[TestCategory("Packaging")]
public sealed class PackageConsumerTests
{
    private const int Size = 32;
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private string _work = "";
    private readonly List<string> _cachedPackageFolders = [];

    [TestInitialize]
    public void CreateWorkFolder() => Directory.CreateDirectory(_work = Path.Combine(Path.GetTempPath(), "medseg-pack-" + Guid.NewGuid().ToString("N")));

    [TestCleanup]
    public void Cleanup()
    {
        // The run's unique package versions leave the global packages folder again; then the temporary folder goes.
        foreach (var folder in _cachedPackageFolders)
            try
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, true);
                string id = Path.GetDirectoryName(folder)!;
                if (Directory.Exists(id) && !Directory.EnumerateFileSystemEntries(id).Any()) Directory.Delete(id);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        try { Directory.Delete(_work, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [TestMethod]
    public void Packages_EnterpriseAppAndModelTests_BuildFromTheFeedAndAgreeWithTheLibrary()
    {
        string repo = RepositoryRoot();
        string dotnet = DotnetHost();

        // 1. Pack both packages, as built for this test run, under a unique prerelease version.
        string prefix = VersionPrefix(repo);
        string version = $"{prefix}-test.g{Guid.NewGuid():N}"[..(prefix.Length + 19)];
        string feed = Path.Combine(_work, "feed");
        foreach (var project in new[] { "src/MLNetMedSeg/MLNetMedSeg.csproj", "src/MLNetMedSeg.Testing/MLNetMedSeg.Testing.csproj" })
            Dotnet(dotnet, repo, null, "pack", Path.Combine(repo, project), "-c", Configuration, "--no-build", "-o", feed, $"-p:PackageVersion={version}");
        CheckLibraryPackage(Path.Combine(feed, $"MLNetMedSeg.{version}.nupkg"), version);
        CheckTestingPackage(Path.Combine(feed, $"MLNetMedSeg.Testing.{version}.nupkg"), version);
        foreach (var example in new[] { "EnterpriseApp", "ModelTests" })
            StringAssert.Contains(File.ReadAllText(Path.Combine(repo, "examples", example, "Directory.Build.props")), $">{prefix}</MLNetMedSegVersion>",
                $"examples/{example}/Directory.Build.props restores the version the repository packs");

        // 2. A tiny model, saved as an application would receive it: LoadImages → ResizeImages → segmentation.
        string train = MLNetPipelineTests.WriteDiscs(Path.Combine(_work, "train"), 24, 5, size: 40);
        string test = MLNetPipelineTests.WriteDiscs(Path.Combine(_work, "test"), 8, 55, size: 40);
        string modelPath = Path.Combine(_work, "model.zip");
        var ml = new MLContext(seed: 1);
        var pairs = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(train, "images"), Path.Combine(train, "masks"));
        var masks = ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", Size, Size);
        var model = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", Size, Size))
            .Append(ml.MedSeg().Trainers.Segmentation(MLNetPipelineTests.TinyOptions(epochs: 8)))
            .Fit(masks.Fit(pairs).Transform(pairs));
        ml.MedSeg().SaveModel(model, pairs.Schema, modelPath);

        // The library's own answers on the held-out pairs: masks, probabilities, mean Dice.
        var testPairs = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(test, "images"), Path.Combine(test, "masks"));
        var scored = model.Transform(masks.Fit(testPairs).Transform(testPairs));
        var expected = Rows(scored);
        double mDice = ml.MedSeg().Evaluate(scored, "Mask", "Probability").MeanDice;
        Assert.AreEqual(8, expected.Count);

        // 3. The app and the model tests, copied out of the repository, restored from the feed.
        string app = CopyExample(repo, "EnterpriseApp", feed);
        string modelTests = CopyExample(repo, "ModelTests", feed);
        string[] props = [$"-p:MLNetMedSegVersion={version}", "-p:CreateHardLinksForCopyLocalIfPossible=true"];

        string build = Dotnet(dotnet, app, null, ["build", "-c", "Release", .. props]);
        CheckRestoredFromFeed(Path.Combine(app, "obj", "project.assets.json"), version, feed);
        CheckGlibcxxLine(build);

        // 4. The app writes one mask per image, identical to the library's prediction.
        string outFolder = Path.Combine(_work, "masks-out");
        string appDll = Path.Combine(app, "bin", "Release", "net10.0", "linux-x64", "EnterpriseApp.dll");
        string output = Dotnet(dotnet, _work, null, appDll, modelPath, Path.Combine(test, "images"), outFolder);
        Console.WriteLine(output);
        StringAssert.Contains(output, $"wrote 8 mask(s) to {outFolder}");
        CollectionAssert.AreEquivalent(expected.Keys.Select(id => id + ".png").ToArray(), Directory.GetFiles(outFolder).Select(Path.GetFileName).ToArray());
        foreach (var (id, (probability, predicted)) in expected)
        {
            var png = ImageIO.Read(Path.Combine(outFolder, id + ".png"));
            Assert.AreEqual((Size, Size, 1), (png.Width, png.Height, png.Channels), id);
            for (int i = 0; i < predicted.Length; i++)
            {
                byte want = predicted[i] >= 0.5f ? (byte)255 : (byte)0;
                // A batch of one may differ from the batched Transform in the last bits: only a pixel at the threshold may flip.
                if (png.Pixels8![i] != want && Math.Abs(probability[i] - 0.5f) > 1e-4f)
                    Assert.Fail($"{id}: pixel {i} is {png.Pixels8[i]} in the app's mask, the library predicts {want} (p = {probability[i]})");
            }
        }
        Assert.IsTrue(expected.Values.Any(r => r.Predicted.Any(v => v >= 0.5f)) && expected.Values.Any(r => r.Predicted.Any(v => v < 0.5f)),
            "the comparison is not vacuous: the masks hold foreground and background");

        // Clear errors, naming what is missing.
        var missingModel = DotnetRaw(dotnet, _work, null, appDll, Path.Combine(_work, "nope.zip"), Path.Combine(test, "images"), outFolder);
        Assert.AreEqual(1, missingModel.Code, missingModel.Output);
        StringAssert.Contains(missingModel.Output, $"the model file '{Path.Combine(_work, "nope.zip")}' does not exist");
        var missingFolder = DotnetRaw(dotnet, _work, null, appDll, modelPath, Path.Combine(_work, "no-images"), outFolder);
        Assert.AreEqual(1, missingFolder.Code, missingFolder.Output);
        StringAssert.Contains(missingFolder.Output, $"the image folder '{Path.Combine(_work, "no-images")}' does not exist");
        string foreign = Path.Combine(_work, "foreign.zip");
        File.WriteAllText(foreign, "not a model");
        AppFails(dotnet, appDll, foreign, test, outFolder, $"'{foreign}' is not a model this library can read");
        string noSegmentation = Path.Combine(_work, "images-only.zip");
        ml.Model.Save(ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.ResizeImages("Image", Size, Size)).Fit(testPairs),
            testPairs.Schema, noSegmentation);
        AppFails(dotnet, appDll, noSegmentation, test, outFolder, "has no binary segmentation output");
        string needsMasks = Path.Combine(_work, "masks-only.zip");
        ml.Model.Save(masks.Fit(testPairs), testPairs.Schema, needsMasks);
        AppFails(dotnet, appDll, needsMasks, test, outFolder, "cannot score an input with only an ImagePath column");

        // 5. The model tests pass at a bar below the model's mean Dice and report the library's value ...
        var env = new Dictionary<string, string>
        {
            ["MEDSEG_MODEL"] = modelPath,
            ["MEDSEG_EVAL_IMAGES"] = Path.Combine(test, "images"),
            ["MEDSEG_EVAL_MASKS"] = Path.Combine(test, "masks"),
            ["MEDSEG_MIN_DICE"] = (mDice - 0.05).ToString("R", CultureInfo.InvariantCulture),
        };
        string passed = Dotnet(dotnet, modelTests, env, ["test", "-c", "Release", .. props, "--logger", "console;verbosity=detailed"]);
        CheckRestoredFromFeed(Path.Combine(modelTests, "obj", "project.assets.json"), version, feed);
        StringAssert.Contains(passed, "Passed SavedModel_ReachesTheDiceBar_OnTheHeldOutPairs");
        var reported = Regex.Match(passed, @"8 pair\(s\) at 32x32, mDice ([0-9.]+)");
        Assert.IsTrue(reported.Success, passed);
        Console.WriteLine($"library: mDice {mDice:F4}; ModelTests: {reported.Value}");
        Assert.AreEqual(mDice, double.Parse(reported.Groups[1].Value, CultureInfo.InvariantCulture), 1e-3, "ModelTests evaluates as the library does");

        // ... and fail, through MetricsAssert, at an impossible one (a runsettings parameter overrides the variable).
        var failed = DotnetRaw(dotnet, modelTests, env, ["test", "-c", "Release", .. props, "--no-build",
            "--", "TestRunParameters.Parameter(name=\"MinDice\", value=\"1.01\")"]);
        Assert.AreNotEqual(0, failed.Code, failed.Output);
        StringAssert.Contains(failed.Output, "MetricsAssert.AtLeast failed");
        StringAssert.Contains(failed.Output, "< 1.01");
    }

    // ------------------------------------------------------------------ checks

    private static void CheckLibraryPackage(string nupkg, string version)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var files = zip.Entries.Select(e => e.FullName).ToHashSet();
        foreach (var f in new[] { "lib/net10.0/MLNetMedSeg.dll", "lib/net10.0/MLNetMedSeg.xml", "README.md", "buildTransitive/MLNetMedSeg.targets",
                     "buildTransitive/MLNetMedSeg.Glibcxx.targets", "build/MLNetMedSeg.targets" })
            Assert.IsTrue(files.Contains(f), $"{Path.GetFileName(nupkg)} holds {f}; it holds {string.Join(", ", files)}");
        var deps = Dependencies(zip, "MLNetMedSeg.nuspec", version);
        Assert.AreEqual("[6.0.0, 6.1.0)", deps.GetValueOrDefault("Microsoft.ML"));
        Assert.AreEqual("[6.0.0, 6.1.0)", deps.GetValueOrDefault("Microsoft.ML.ImageAnalytics"));
        Assert.AreEqual("0.107.0", deps.GetValueOrDefault("TorchSharp"));
        Assert.IsTrue(deps.ContainsKey("SkiaSharp") && deps.ContainsKey("BitMiracle.LibTiff.NET"), string.Join(", ", deps.Keys));
        Assert.IsFalse(deps.Keys.Any(d => d.StartsWith("libtorch", StringComparison.OrdinalIgnoreCase) || d.StartsWith("TorchSharp-", StringComparison.OrdinalIgnoreCase)),
            "no libtorch backend: the application picks it; got " + string.Join(", ", deps.Keys));
        Assert.IsFalse(deps.ContainsKey("Mono.Cecil"), "Mono.Cecil is build-time only");
        Assert.IsTrue(deps.ContainsKey("Google.Protobuf"), "reads the ImageNet ONNX model");
        Assert.IsFalse(deps.ContainsKey("Microsoft.ML.DnnImageFeaturizer.ResNet18"),
            "the 64 MB ImageNet package is the application's choice, only when it asks for ImageNet weights");
    }

    private static void CheckTestingPackage(string nupkg, string version)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        Assert.IsNotNull(zip.GetEntry("lib/net10.0/MLNetMedSeg.Testing.dll"));
        var deps = Dependencies(zip, "MLNetMedSeg.Testing.nuspec", version);
        Assert.AreEqual(version, deps.GetValueOrDefault("MLNetMedSeg"), "MLNetMedSeg.Testing depends on MLNetMedSeg of its own version");
        Assert.IsTrue(deps.ContainsKey("MSTest.TestFramework"), string.Join(", ", deps.Keys));
    }

    private static Dictionary<string, string> Dependencies(ZipArchive zip, string nuspec, string version)
    {
        using var s = zip.GetEntry(nuspec)!.Open();
        var doc = XDocument.Load(s);
        var ns = doc.Root!.Name.Namespace;
        Assert.AreEqual(version, doc.Root.Element(ns + "metadata")!.Element(ns + "version")!.Value);
        Assert.AreEqual("MIT", doc.Root.Element(ns + "metadata")!.Element(ns + "license")?.Value);
        return doc.Descendants(ns + "dependency").ToDictionary(d => (string)d.Attribute("id")!, d => (string)d.Attribute("version")!);
    }

    /// <summary>The assets file shows MLNetMedSeg at this run's version, taken from the feed; its cache folder is removed afterwards.</summary>
    private void CheckRestoredFromFeed(string assetsFile, string version, string feed)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(assetsFile));
        var libraries = doc.RootElement.GetProperty("libraries");
        Assert.IsTrue(libraries.TryGetProperty($"MLNetMedSeg/{version}", out _), "restored MLNetMedSeg " + version);
        Assert.IsFalse(libraries.EnumerateObject().Any(l => l.Value.GetProperty("type").GetString() == "project"), "no project references: packages only");
        var sources = doc.RootElement.GetProperty("project").GetProperty("restore").GetProperty("sources").EnumerateObject().Select(p => p.Name).ToList();
        Assert.IsTrue(sources.Any(s => Path.GetFullPath(s).TrimEnd('/') == Path.GetFullPath(feed).TrimEnd('/')), "the feed is a source: " + string.Join(", ", sources));
        foreach (var folder in doc.RootElement.GetProperty("packageFolders").EnumerateObject().Select(p => p.Name))
            foreach (var id in new[] { "mlnetmedseg", "mlnetmedseg.testing" })
                _cachedPackageFolders.Add(Path.Combine(folder, id, version.ToLowerInvariant()));
    }

    /// <summary>Where this machine's libstdc++ lacks GLIBCXX_3.4.32, the package's targets fixed the app's copy, saying so once.</summary>
    private static void CheckGlibcxxLine(string buildOutput)
    {
        string? lib = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" }.FirstOrDefault(File.Exists);
        if (!OperatingSystem.IsLinux() || lib is null) return;
        bool old = File.ReadAllBytes(lib).AsSpan().IndexOf("GLIBCXX_3.4.32\0"u8) < 0;
        int lines = Regex.Matches(buildOutput, "MLNetMedSeg: .* lacks GLIBCXX_3.4.32; marked that requirement weak in .*libLibTorchSharp.so").Count;
        Assert.AreEqual(old ? 1 : 0, lines, buildOutput);
    }

    /// <summary>The app refuses the model with one clear line (exit code 1) and writes nothing more.</summary>
    private void AppFails(string dotnet, string appDll, string model, string data, string outFolder, string message)
    {
        int before = Directory.GetFiles(outFolder).Length;
        var r = DotnetRaw(dotnet, _work, null, appDll, model, Path.Combine(data, "images"), outFolder);
        Assert.AreEqual(1, r.Code, r.Output);
        StringAssert.Contains(r.Output, "error: ");
        StringAssert.Contains(r.Output, message);
        Assert.IsFalse(r.Output.Contains("   at "), "no stack trace: " + r.Output);
        Assert.AreEqual(before, Directory.GetFiles(outFolder).Length);
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Per Id: the library's Probability and Predicted values.</summary>
    private static SortedDictionary<string, (float[] Probability, float[] Predicted)> Rows(IDataView scored)
    {
        var result = new SortedDictionary<string, (float[], float[])>(StringComparer.Ordinal);
        var cols = new[] { scored.Schema["Id"], scored.Schema["Probability"], scored.Schema["Predicted"] };
        using var cursor = scored.GetRowCursor(cols);
        var id = cursor.GetGetter<ReadOnlyMemory<char>>(cols[0]);
        var p = cursor.GetGetter<VBuffer<float>>(cols[1]);
        var m = cursor.GetGetter<VBuffer<float>>(cols[2]);
        ReadOnlyMemory<char> idValue = default;
        VBuffer<float> pValue = default, mValue = default;
        while (cursor.MoveNext())
        {
            id(ref idValue);
            p(ref pValue);
            m(ref mValue);
            result.Add(idValue.ToString(), (pValue.DenseValues().ToArray(), mValue.DenseValues().ToArray()));
        }
        return result;
    }

    /// <summary>Copies examples/NAME (no bin/obj) into the work folder, its nuget.config pointing at <paramref name="feed"/>.</summary>
    private string CopyExample(string repo, string name, string feed)
    {
        string src = Path.Combine(repo, "examples", name), dst = Path.Combine(_work, "apps", name);
        foreach (var file in Directory.EnumerateFiles(src, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(src, file);
            if (rel.Split(Path.DirectorySeparatorChar)[0] is "bin" or "obj") continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dst, rel))!);
            File.Copy(file, Path.Combine(dst, rel));
        }
        string config = Path.Combine(dst, "nuget.config");
        string text = File.ReadAllText(config);
        const string local = "value=\"../../artifacts/packages\"";
        StringAssert.Contains(text, local, $"examples/{name}/nuget.config names the repository's package folder");
        File.WriteAllText(config, text.Replace(local, $"value=\"{feed}\""));
        return dst;
    }

    private static string RepositoryRoot()
    {
        string repo = TestPaths.RepositoryRoot();
        Assert.IsTrue(Directory.Exists(Path.Combine(repo, "examples", "EnterpriseApp")),
            "the repository's sources are not above " + AppContext.BaseDirectory + " (a copied test binary): run the tests from the repository (bash build/test.sh), which packs and builds the examples");
        return repo;
    }

    private static string VersionPrefix(string repo)
    {
        var m = Regex.Match(File.ReadAllText(Path.Combine(repo, "Directory.Build.props")), "<VersionPrefix>([^<]+)</VersionPrefix>");
        Assert.IsTrue(m.Success, "Directory.Build.props sets VersionPrefix");
        return m.Groups[1].Value;
    }

    /// <summary>The dotnet host that has an SDK (the one running `dotnet test`, else the first on PATH).</summary>
    private static string DotnetHost()
    {
        var candidates = new List<string?> { Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") };
        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, "dotnet")));
        foreach (var c in candidates)
            if (!string.IsNullOrEmpty(c) && File.Exists(c) && Directory.Exists(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(c))!, "sdk")))
                return c;
        Assert.Fail("no .NET SDK found (DOTNET_HOST_PATH or dotnet on PATH with an sdk/ folder): this test packs the library and builds the package-only examples, which needs the SDK that build/test.sh uses");
        return "";
    }

    /// <summary>Runs dotnet; fails the test with the output's tail unless it exits 0. Returns stdout and stderr.</summary>
    private static string Dotnet(string dotnet, string dir, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var (code, output) = DotnetRaw(dotnet, dir, env, args);
        if (code != 0) Assert.Fail($"dotnet {string.Join(' ', args)} exited {code}:\n{Tail(output)}");
        return output;
    }

    private static (int Code, string Output) DotnetRaw(string dotnet, string dir, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(dotnet) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The outer `dotnet test` leaves MSBuild and test-platform variables that would steer the inner runs.
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)
                || key is "MEDSEG_MODEL" or "MEDSEG_EVAL_IMAGES" or "MEDSEG_EVAL_MASKS" or "MEDSEG_MIN_DICE")
                psi.Environment.Remove(key);
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";          // no MSBuild node outlives the test
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromMinutes(8)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not finish in 8 minutes:\n{Tail(output.ToString())}");
        }
        process.WaitForExit();
        lock (output) return (process.ExitCode, output.ToString());
    }

    private static string Tail(string s) => s.Length <= 6000 ? s : "…" + s[^6000..];
}
