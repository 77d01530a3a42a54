namespace MLNetMedSeg.Tests.Documentation;

/// <summary>
/// The repository's Markdown (README, docs/, the stage READMEs, data/ and examples/) has no broken relative link: every
/// linked file exists and every #anchor names a heading of the linked file. A section deleted or renamed by mistake
/// shows up here as the links that pointed at it.
/// </summary>
[TestClass]
public sealed class DocumentationLinksTests
{
    private static readonly string[] Skipped = ["bin", "obj", "runs", "TestResults", "node_modules"];

    [TestMethod]
    public void EveryRelativeLinkAndAnchorInTheRepositorysMarkdownResolves()
    {
        string root = TestPaths.RepositoryRoot();
        var files = MarkdownFiles(root).ToList();
        CollectionAssert.IsSubsetOf(new[] { "README.md", Path.Combine("docs", "results.md") }, files.Select(f => Path.GetRelativePath(root, f)).ToList(),
            "the repository's Markdown files are found");
        var broken = files.SelectMany(f => MarkdownLinks.Broken(root, f)).ToList();
        Assert.AreEqual(0, broken.Count, "broken links:\n" + string.Join("\n", broken));
    }

    [TestMethod]
    public void TheCheckFindsAMissingFileAndAMissingAnchor()
    {
        string dir = Directory.CreateTempSubdirectory("md-links-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "docs"));
            File.WriteAllText(Path.Combine(dir, "docs", "results.md"), "# Results\n\n## DASP on the sample (the demo)\n\n## Notes\n\n## Notes\n");
            File.WriteAllText(Path.Combine(dir, "README.md"), string.Join("\n",
                "# Title", "## A tour of the API",
                "[ok](docs/results.md#dasp-on-the-sample-the-demo) [ok](#a-tour-of-the-api) [ok](docs/results.md#notes-1)",
                "[gone](docs/missing.md) ![gone](docs/images/x.png)",
                "[no anchor](docs/results.md#dasp-on-the-sample)",
                "`[in code](nowhere.md)` [web](https://example.org/x.md#y)",
                "```", "[in a fence](nowhere.md)", "```"));
            var broken = MarkdownLinks.Broken(dir, Path.Combine(dir, "README.md")).ToList();
            Assert.AreEqual(3, broken.Count, string.Join("\n", broken));
            StringAssert.StartsWith(broken[0], "README.md:4: links to docs/missing.md");
            StringAssert.StartsWith(broken[1], "README.md:4: links to docs/images/x.png");
            StringAssert.Contains(broken[2], "README.md:5: links to docs/results.md#dasp-on-the-sample, but docs/results.md has no heading with the id 'dasp-on-the-sample'");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void HeadingIdsFollowGitHub()
    {
        Assert.AreEqual("dasp-on-the-shipped-sample-the-demo", MarkdownLinks.HeadingId("DASP on the shipped sample (the demo)"));
        Assert.AreEqual("backends-cpu-cuda-other-systems", MarkdownLinks.HeadingId("Backends: CPU, CUDA, other systems"));
        Assert.AreEqual("deformation-attacks-on-kvasir-seg-paper-002", MarkdownLinks.HeadingId("Deformation attacks on Kvasir-SEG (paper 002)"));
        Assert.AreEqual("at-128-px-on-a-gpu", MarkdownLinks.HeadingId("At 128 px on a GPU"));
        Assert.AreEqual("the-data", MarkdownLinks.HeadingId("The [data](x.md)"));
    }

    private static IEnumerable<string> MarkdownFiles(string root)
    {
        foreach (string file in Directory.EnumerateFiles(root, "*.md"))
            yield return file;
        foreach (string dir in Directory.EnumerateDirectories(root))
        {
            string name = Path.GetFileName(dir);
            if (name.StartsWith('.') || Skipped.Contains(name)) continue;
            foreach (string file in MarkdownFiles(dir))
                yield return file;
        }
    }
}
