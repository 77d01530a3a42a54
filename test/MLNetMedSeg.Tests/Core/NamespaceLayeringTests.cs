using System.Reflection;
using System.Reflection.Emit;
using MLNetMedSeg.Segmentation;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// The library's namespaces form layers: no namespace depends, through any chain, on one that depends on it. References
/// are read from the compiled assembly — base types, interfaces, fields, signatures, generic arguments and every type or
/// member a method body names — so a cycle introduced anywhere fails here, naming a reference on each side. Exempt: the
/// root namespace (the composition root: <c>BuiltInModelLoaders</c>) and <c>Core.MLNet</c> (the ML.NET bridge, which loads
/// every stage); the ML.NET catalogs live in <c>Microsoft.ML</c>.
/// </summary>
[TestClass]
public sealed class NamespaceLayeringTests
{
    private const string Root = "MLNetMedSeg";
    private static readonly HashSet<string> Exempt = [Root, "MLNetMedSeg.Core.MLNet"];

    [TestMethod]
    public void NoNamespaceCycles()
    {
        var edges = References(typeof(SegmentationTrainer).Assembly);
        var cycles = StronglyConnected(edges).Where(c => c.Count > 1).ToList();
        var report = cycles.Select(c => string.Join("\n", c.SelectMany(a => c.Where(b => b != a && edges[a].ContainsKey(b))
            .Select(b => $"  {a} → {b} (e.g. {edges[a][b]})"))));
        Assert.AreEqual(0, cycles.Count, "namespace cycles:\n" + string.Join("\n\n", report));
        // The layers the design relies on (a regression would show up as a cycle above, but say them plainly too).
        Assert.IsFalse(Reaches(edges, "MLNetMedSeg.Segmentation", "MLNetMedSeg.Augmentation.Adversarial"));
        Assert.IsFalse(edges["MLNetMedSeg.Diffusion"].ContainsKey("MLNetMedSeg.Segmentation"),
            "Diffusion does not use Segmentation's types (only the augmentation side channel does, which the trainer reads)");
        Assert.IsFalse(Reaches(edges, "MLNetMedSeg.Data", "MLNetMedSeg.Pipeline"));
        Assert.IsFalse(Reaches(edges, "MLNetMedSeg.Core", "MLNetMedSeg.Core.Training"));
    }

    [TestMethod]
    public void TheScannerSeesMethodBodyReferences()
    {
        // A guard on the guard: SegmentationTrainer's Fit body creates a TrainingLoop (Core.Training) and its online
        // pool calls TrainingPool.Join (same namespace) — the first is only visible in IL.
        var edges = References(typeof(SegmentationTrainer).Assembly);
        Assert.IsTrue(edges["MLNetMedSeg.Segmentation"].ContainsKey("MLNetMedSeg.Core.Training"));
    }

    private static bool Reaches(Dictionary<string, Dictionary<string, string>> edges, string from, string to)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>([from]);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (!seen.Add(n) || !edges.TryGetValue(n, out var next)) continue;
            foreach (var m in next.Keys)
            {
                if (m == to) return true;
                stack.Push(m);
            }
        }
        return false;
    }

    /// <summary>namespace → (namespace it references → one example "Type.member → Type").</summary>
    private static Dictionary<string, Dictionary<string, string>> References(Assembly assembly)
    {
        var edges = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        var opcodes = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => (ushort)o.Value);
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in assembly.GetTypes())
        {
            string? from = type.Namespace;
            if (from is null || !from.StartsWith(Root, StringComparison.Ordinal) || Exempt.Contains(from)) continue;
            void Add(Type? t, string where)
            {
                if (t is null) return;
                if (t.HasElementType) { Add(t.GetElementType(), where); return; }
                if (t.IsGenericType && !t.IsGenericTypeDefinition)
                    foreach (var a in t.GetGenericArguments()) Add(a, where);
                if (t.IsGenericParameter || t.Assembly != assembly) return;
                string? to = t.Namespace;
                if (to is null || to == from || !to.StartsWith(Root, StringComparison.Ordinal)) return;
                if (!edges.TryGetValue(from, out var targets)) edges[from] = targets = new(StringComparer.Ordinal);
                targets.TryAdd(to, $"{type.Name}.{where} → {t.Name}");
            }
            Add(type.BaseType, "(base)");
            foreach (var i in type.GetInterfaces()) Add(i, "(interface)");
            foreach (var f in type.GetFields(all)) Add(f.FieldType, f.Name);
            foreach (var p in type.GetProperties(all)) Add(p.PropertyType, p.Name);
            foreach (var m in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                if (m is MethodInfo mi) Add(mi.ReturnType, m.Name);
                foreach (var p in m.GetParameters()) Add(p.ParameterType, m.Name);
                byte[]? il;
                try { il = m.GetMethodBody()?.GetILAsByteArray(); }
                catch (Exception e) when (e is BadImageFormatException or InvalidOperationException) { il = null; }
                if (il is null) continue;
                for (int pos = 0; pos < il.Length;)
                {
                    ushort code = il[pos] == 0xFE ? (ushort)(0xFE00 | il[pos + 1]) : il[pos];
                    pos += il[pos] == 0xFE ? 2 : 1;
                    var op = opcodes[code];
                    int size = op.OperandType switch
                    {
                        OperandType.InlineNone => 0,
                        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                        OperandType.InlineVar => 2,
                        OperandType.InlineI8 or OperandType.InlineR => 8,
                        OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, pos),
                        _ => 4,
                    };
                    if (op.OperandType is OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok)
                    {
                        int token = BitConverter.ToInt32(il, pos);
                        try
                        {
                            var member = type.Module.ResolveMember(token,
                                type.IsGenericType ? type.GetGenericArguments() : null,
                                m.IsGenericMethod ? m.GetGenericArguments() : null);
                            switch (member)
                            {
                                case Type t: Add(t, m.Name); break;
                                case FieldInfo f: Add(f.DeclaringType, m.Name); Add(f.FieldType, m.Name); break;
                                case MethodBase callee:
                                    Add(callee.DeclaringType, m.Name);
                                    if (callee is MethodInfo { IsGenericMethod: true } g) foreach (var a in g.GetGenericArguments()) Add(a, m.Name);
                                    break;
                            }
                        }
                        catch (ArgumentException) { }
                    }
                    pos += size;
                }
            }
        }
        return edges;
    }

    /// <summary>Tarjan's strongly connected components.</summary>
    private static List<List<string>> StronglyConnected(Dictionary<string, Dictionary<string, string>> edges)
    {
        var nodes = edges.Keys.Concat(edges.Values.SelectMany(v => v.Keys)).Distinct().ToList();
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var onStack = new HashSet<string>();
        var stack = new Stack<string>();
        var result = new List<List<string>>();
        int next = 0;
        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in edges.TryGetValue(v, out var e) ? e.Keys.ToList() : new List<string>())
            {
                if (!index.ContainsKey(w)) { Visit(w); low[v] = Math.Min(low[v], low[w]); }
                else if (onStack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }
            if (low[v] != index[v]) return;
            var c = new List<string>();
            string x;
            do { x = stack.Pop(); onStack.Remove(x); c.Add(x); } while (x != v);
            result.Add(c);
        }
        foreach (var n in nodes) if (!index.ContainsKey(n)) Visit(n);
        return result;
    }
}
