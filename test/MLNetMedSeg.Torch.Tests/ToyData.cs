namespace MLNetMedSeg.Torch.Tests;

/// <summary>Synthetic segmentation data: bright discs on a noisy background, drawn from a seeded generator.</summary>
internal static class ToyData
{
    /// <summary>Images [n,1,size,size] in [0,1] and binary masks [n,1,size,size] (float32). Caller owns both.</summary>
    public static (Tensor images, Tensor masks) Discs(int n, int size, int seed)
    {
        var rng = new Random(seed);
        var img = new float[n * size * size];
        var msk = new float[n * size * size];
        for (int i = 0; i < n; i++)
        {
            double cx = rng.Next(size / 4, 3 * size / 4), cy = rng.Next(size / 4, 3 * size / 4);
            double r = rng.Next(size / 8, size / 4);
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    int k = (i * size + y) * size + x;
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                    msk[k] = inside ? 1f : 0f;
                    double noise = (rng.NextDouble() - 0.5) * 0.3;
                    img[k] = (float)Math.Clamp((inside ? 0.7 : 0.3) + noise, 0, 1);
                }
        }
        return (torch.tensor(img, [n, 1, size, size]), torch.tensor(msk, [n, 1, size, size]));
    }
}
