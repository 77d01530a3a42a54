using System.Reflection;
using MLNetMedSeg.Core.MLNet;

namespace MLNetMedSeg.Tests.Core.MLNet;

[TestClass]
public sealed class ModelFilesTests
{
    /// <summary>
    /// Every stage registered with ML.NET (LoadableStages.cs) is registered under the loader signature its model header
    /// carries: its own when it fits the header's 23 characters, else "MS." + the part after "MEDSEG." (ML.NET refuses a
    /// longer signature when saving, and finds the loader by this name when loading).
    /// </summary>
    [TestMethod]
    public void LoadableStages_AreRegisteredUnderTheirHeaderSignatures()
    {
        var registrations = typeof(StageTransformer).Assembly.GetCustomAttributesData()
            .Where(a => a.AttributeType.Name == "LoadableClassAttribute").ToList();
        Assert.IsTrue(registrations.Count >= 11, $"{registrations.Count} registrations");
        foreach (var a in registrations)
        {
            var type = (Type)a.ConstructorArguments[0].Value!;
            var names = a.ConstructorArguments.Last().Value switch
            {
                IEnumerable<CustomAttributeTypedArgument> many => many.Select(x => (string)x.Value!).ToArray(),
                string one => [one],
                var other => throw new AssertFailedException($"{type.Name}: unexpected load names {other}"),
            };
            string signature = (string)type.GetField("LoaderSignature", BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;
            string header = signature.Length <= 23 ? signature : "MS." + signature["MEDSEG.".Length..];
            Assert.IsTrue(header.Length <= 23, $"{type.Name}: '{header}' is too long for ML.NET's header");
            CollectionAssert.AreEqual(new[] { header }, names, $"{type.Name} (signature {signature})");
            Assert.IsTrue(typeof(StageTransformer).IsAssignableFrom(type), type.Name);
        }
    }
}
