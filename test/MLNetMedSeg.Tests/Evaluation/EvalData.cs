using MLNetMedSeg.Data;

namespace MLNetMedSeg.Tests.Evaluation;

/// <summary>Tiny masks written as text: one string per row, one digit per pixel.</summary>
internal static class EvalData
{
    /// <summary>A binary mask float32 [1,H,W] from rows of '0'/'1'.</summary>
    public static Tensor Mask(params string[] rows)
    {
        int h = rows.Length, w = rows[0].Length;
        var v = new float[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                v[y * w + x] = rows[y][x] - '0';
        return torch.tensor(v, [1, h, w]);
    }

    /// <summary>A class-index mask int64 [H,W] from rows of digits.</summary>
    public static Tensor Labels(params string[] rows)
    {
        int h = rows.Length, w = rows[0].Length;
        var v = new long[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                v[y * w + x] = rows[y][x] - '0';
        return torch.tensor(v, [h, w]);
    }

    /// <summary>A bool[] mask from rows of '0'/'1'.</summary>
    public static bool[] Bools(params string[] rows) => rows.SelectMany(r => r.Select(c => c == '1')).ToArray();

    /// <summary>Rectangle [y0,y0+hh) × [x0,x0+ww) in an h×w bool mask, clipped to the image.</summary>
    public static bool[] Rect(int h, int w, int y0, int x0, int hh, int ww)
    {
        var m = new bool[h * w];
        for (int y = Math.Max(0, y0); y < Math.Min(h, y0 + hh); y++)
            for (int x = Math.Max(0, x0); x < Math.Min(w, x0 + ww); x++)
                m[y * w + x] = true;
        return m;
    }

    /// <summary>Float32 [1,H,W] tensor from a bool mask.</summary>
    public static Tensor ToTensor(bool[] m, int h, int w) => torch.tensor(m.Select(b => b ? 1f : 0f).ToArray(), [1, h, w]);

    public static InMemoryDataView BinaryView(string[] ids, Tensor[] masks, Tensor[] probs, Tensor[]? images = null)
    {
        var cols = new List<(string, ColumnType, System.Collections.IList)>
        {
            ("Id", TextColumnType.Instance, ids),
            ("Mask", TensorColumnType.BinaryMask(), masks),
            ("Probability", TensorColumnType.BinaryMask(), probs),
        };
        if (images is not null) cols.Add(("Image", TensorColumnType.Image(), images));
        return InMemoryDataView.Create(cols.ToArray());
    }
}
