using System.Security.Cryptography;
using System.Text;

namespace MLNetMedSeg.Core;

/// <summary>
/// How the library derives seeds: every component's stream comes from (a base seed, the component's stable name, an
/// index), hashed, so adding a component never shifts another one's stream. Public so that applications and
/// experiments (e.g. an MS-SSIM pair draw) can derive their own streams the same way.
/// </summary>
public static class Seeds
{
    /// <summary>A deterministic 64-bit seed from a base seed, a name and an index (SHA-256 based, platform independent).</summary>
    public static ulong Mix(ulong baseSeed, string name, int index)
    {
        ArgumentNullException.ThrowIfNull(name);
        var bytes = Encoding.UTF8.GetBytes($"{baseSeed}|{name}|{index}");
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(bytes, hash);
        return BitConverter.ToUInt64(hash[..8]);
    }
}
