using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MLNetMedSeg.Tests.Documentation;

/// <summary>
/// Checks the relative links of Markdown files as GitHub renders them: <c>[text](path)</c>, <c>![alt](path)</c> and
/// <c>(path#anchor)</c> / <c>(#anchor)</c>. A link's file must exist relative to the linking file; an anchor into a
/// Markdown file must be one of its headings' GitHub ids (lower case, punctuation dropped, spaces to hyphens, "-1",
/// "-2" … for repeated headings). Links inside code (fenced blocks, backticks) and absolute URLs are not checked.
/// </summary>
internal static partial class MarkdownLinks
{
    /// <summary>"file:line: problem" for every broken link of <paramref name="markdownFile"/>, paths relative to <paramref name="root"/>.</summary>
    public static IEnumerable<string> Broken(string root, string markdownFile)
    {
        string name = Path.GetRelativePath(root, markdownFile);
        var headingIds = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);   // each linked file read once
        foreach (var (line, target) in Links(markdownFile))
        {
            if (UrlScheme().IsMatch(target)) continue;
            int hash = target.IndexOf('#');
            string file = hash < 0 ? target : target[..hash], anchor = hash < 0 ? "" : target[(hash + 1)..];
            string path = file.Length == 0 ? markdownFile : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(markdownFile)!, Uri.UnescapeDataString(file)));
            if (!File.Exists(path) && !Directory.Exists(path))
                yield return $"{name}:{line}: links to {target}, but {Path.GetRelativePath(root, path)} does not exist";
            else if (anchor.Length > 0 && path.EndsWith(".md", StringComparison.OrdinalIgnoreCase) && !(headingIds.TryGetValue(path, out var ids) ? ids : headingIds[path] = HeadingIds(path)).Contains(anchor))
                yield return $"{name}:{line}: links to {target}, but {Path.GetRelativePath(root, path)} has no heading with the id '{anchor}'";
        }
    }

    /// <summary>GitHub's ids of the file's headings.</summary>
    public static HashSet<string> HeadingIds(string markdownFile)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (_, text) in ProseLines(markdownFile))
        {
            var m = Heading().Match(text);
            if (!m.Success) continue;
            string id = HeadingId(m.Groups[1].Value);
            int n = seen.GetValueOrDefault(id);
            seen[id] = n + 1;
            ids.Add(n == 0 ? id : $"{id}-{n}");
        }
        return ids;
    }

    /// <summary>GitHub's id of one heading: its text (links reduced to their text) in lower case, letters, digits, spaces, hyphens and underscores kept, spaces turned into hyphens.</summary>
    public static string HeadingId(string heading)
    {
        string text = InlineLink().Replace(heading.Trim(), "$1").ToLowerInvariant();
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            var category = char.GetUnicodeCategory(c);
            if (char.IsLetterOrDigit(c) || c is '-' or '_' || category is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark)
                sb.Append(c);
            else if (c == ' ')
                sb.Append('-');
        }
        return sb.ToString();
    }

    private static IEnumerable<(int Line, string Target)> Links(string markdownFile)
    {
        foreach (var (line, text) in ProseLines(markdownFile))
            foreach (Match m in LinkTarget().Matches(CodeSpan().Replace(text, "")))
                yield return (line, m.Groups[1].Value);
    }

    /// <summary>The lines outside fenced code blocks, numbered from 1.</summary>
    private static IEnumerable<(int Line, string Text)> ProseLines(string markdownFile)
    {
        bool inFence = false;
        int number = 0;
        foreach (string text in File.ReadLines(markdownFile))
        {
            number++;
            if (text.TrimStart().StartsWith("```", StringComparison.Ordinal)) { inFence = !inFence; continue; }
            if (!inFence) yield return (number, text);
        }
    }

    [GeneratedRegex(@"^#{1,6}\s+(.*?)\s*#*\s*$")] private static partial Regex Heading();
    [GeneratedRegex(@"\]\(([^)\s]+)(?:\s+""[^""]*"")?\)")] private static partial Regex LinkTarget();
    [GeneratedRegex(@"\[([^\]]*)\]\([^)]*\)")] private static partial Regex InlineLink();
    [GeneratedRegex(@"`[^`]*`")] private static partial Regex CodeSpan();
    [GeneratedRegex(@"^[a-zA-Z][a-zA-Z0-9+.-]*:")] private static partial Regex UrlScheme();
}
