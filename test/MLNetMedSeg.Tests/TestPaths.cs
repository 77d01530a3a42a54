namespace MLNetMedSeg.Tests;

/// <summary>The repository's own files, found by walking up from the test assembly to the folder with MLNetMedSeg.sln.</summary>
internal static class TestPaths
{
    /// <summary>The repository root: the nearest folder above the test binaries that holds MLNetMedSeg.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MLNetMedSeg.sln")))
                return d.FullName;
        throw new DirectoryNotFoundException($"no MLNetMedSeg.sln above {AppContext.BaseDirectory}: run the tests from the repository (bash build/test.sh)");
    }
}
