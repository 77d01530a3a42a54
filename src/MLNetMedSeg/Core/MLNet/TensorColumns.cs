using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetMedSeg.Data;
using TorchSharp;
using MLDataViewType = Microsoft.ML.Data.DataViewType;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>
/// The one place where ML.NET column values become TorchSharp tensors and back. ML.NET side: an image is ImageAnalytics'
/// <see cref="MLImage"/> (<see cref="ImageDataViewType"/>); a tensor is a dense <see cref="VBuffer{T}"/> of a
/// <see cref="VectorDataViewType"/> whose dimensions are the tensor's shape (float32 [C,H,W] images, probabilities and
/// binary masks; int64 [H,W] class maps); ids and paths are text. Library side: float32 tensors, images in [0,1] RGB.
/// <para><b>What fits from ML.NET's own transforms</b> (checked in MixedChainTests):</para>
/// <list type="bullet">
/// <item><c>LoadImages</c> → <c>ResizeImages</c>: an <see cref="MLImage"/>, read as float [3,H,W] = pixel / 255, RGB.</item>
/// <item><c>ExtractPixels(interleavePixelColors: false)</c> (its default) gives <c>Vector&lt;Single, 3, H, W&gt;</c>,
/// planes in R, G, B order: read as [3,H,W]. With <c>scaleImage: 1f / 255</c> the values are bit for bit those of the
/// MLImage conversion; without it they are 0–255, and the stages that work in [0,1] (diffusion, the attacks' clipping)
/// then see the wrong range.</item>
/// <item><c>ExtractPixels(interleavePixelColors: true)</c> gives <c>Vector&lt;Single, H, W, 3&gt;</c> (channels last).
/// A 3-dimensional vector is always read as [C,H,W], so this is [H,W,3] read as H channels of W×3: stages that check
/// their channel count refuse it naming the column (expected [3,?,?]); do not interleave.</item>
/// <item><c>NormalizeMinMax</c>, <c>NormalizeMeanVariance</c> and other per-slot normalizers keep the input's dimensions,
/// so their output is read like their input (note that they normalize each pixel position across rows, not each image).</item>
/// <item>A float vector without dimensions (<c>[VectorType(768)]</c> on a <c>float[]</c>, or transforms that flatten) cannot
/// be read: the library cannot tell [3,16,16] from [1,16,48]. A stage reading such a column refuses it at Fit, before
/// any training, naming the column and its type. <c>IEstimator.GetOutputSchema(SchemaShape)</c> cannot see this:
/// ML.NET's <c>SchemaShape</c> carries no dimensions (only "vector of Single"). Declare the dimensions
/// (<c>[VectorType(3, H, W)]</c>).</item>
/// <item>Vectors of Double (a <c>double[]</c> member) are not read either (float32 only; integer vectors [H,W] are class
/// maps).</item>
/// <item>The library's output columns are <c>Vector&lt;Single, C, H, W&gt;</c> (or <c>Vector&lt;Int64, H, W&gt;</c> class
/// maps) with their dimensions, so ML.NET's transforms downstream (normalizers, <c>CopyColumns</c>, <c>CreateEnumerable</c>
/// into <c>[VectorType(C, H, W)] float[]</c>) read them as any vector column.</item>
/// </list>
/// </summary>
public static class TensorColumns
{
    /// <summary>The ML.NET type of a tensor column: a vector with the tensor's dimensions (variable length when one is unknown).</summary>
    internal static VectorDataViewType ToVectorType(TensorColumnType type)
    {
        ArgumentNullException.ThrowIfNull(type);
        var item = ItemType(type.DType);
        if (type.Shape.Any(d => d <= 0)) return new VectorDataViewType(item);
        return new VectorDataViewType(item, type.Shape.Select(d => checked((int)d)).ToArray());
    }

    /// <summary>The ML.NET type of a library column (tensor → vector, text → text, number → double).</summary>
    internal static MLDataViewType ToDataViewType(ColumnType type) => type switch
    {
        TensorColumnType t => ToVectorType(t),
        TextColumnType => TextDataViewType.Instance,
        NumberColumnType => NumberDataViewType.Double,
        _ => throw new NotSupportedException($"column type {type} has no ML.NET equivalent"),
    };

    /// <summary>
    /// The library type an ML.NET column is read as, or null when the library cannot read it: an image → float32
    /// [3,H,W]; a float vector with dimensions [C,H,W] (or [H,W] → [1,H,W]) → float32 tensor; an integer vector [H,W] →
    /// int64 class map; text → text; a numeric or boolean scalar → number.
    /// </summary>
    internal static ColumnType? FromDataViewType(MLDataViewType type)
    {
        ArgumentNullException.ThrowIfNull(type);
        switch (type)
        {
            case ImageDataViewType img:
                return TensorColumnType.Image(3, img.Height > 0 ? img.Height : -1, img.Width > 0 ? img.Width : -1);
            case VectorDataViewType v when v.IsKnownSize && v.ItemType == NumberDataViewType.Single:
                var d = v.Dimensions;
                if (d.Length == 3) return new TensorColumnType(ScalarType.Float32, [d[0], d[1], d[2]]);
                if (d.Length == 2) return new TensorColumnType(ScalarType.Float32, [1, d[0], d[1]]);
                return null;
            case VectorDataViewType v when v.IsKnownSize && v.Dimensions.Length == 2 && IsInteger(v.ItemType):
                return TensorColumnType.ClassMask(v.Dimensions[0], v.Dimensions[1]);
            case TextDataViewType:
                return TextColumnType.Instance;
            case NumberDataViewType:
            case BooleanDataViewType:
                return NumberColumnType.Instance;
            default:
                return null;
        }
    }

    private static bool IsInteger(MLDataViewType t) =>
        t == NumberDataViewType.Int64 || t == NumberDataViewType.Int32 || t == NumberDataViewType.UInt32 || t == NumberDataViewType.Byte;

    private static PrimitiveDataViewType ItemType(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => NumberDataViewType.Single,
        ScalarType.Int64 => NumberDataViewType.Int64,
        _ => throw new NotSupportedException($"tensor columns of {dtype} have no ML.NET vector type (float32 and int64 do)"),
    };

    /// <summary>
    /// An image as float32 [3,H,W] RGB in [0,1] (alpha dropped). <paramref name="column"/> names the column in errors.
    /// </summary>
    public static Tensor FromImage(MLImage image, string column)
    {
        if (image is null) throw new InvalidDataException($"column '{column}': the row has no image (did LoadImages find the file?)");
        int w = image.Width, h = image.Height;
        if (w <= 0 || h <= 0) throw new InvalidDataException($"column '{column}': the image is empty ({w}×{h})");
        var px = image.Pixels;
        int r, b;
        switch (image.PixelFormat)
        {
            case MLPixelFormat.Bgra32: r = 2; b = 0; break;
            case MLPixelFormat.Rgba32: r = 0; b = 2; break;
            default: throw new NotSupportedException($"column '{column}': pixel format {image.PixelFormat} is not supported (BGRA32 and RGBA32 are)");
        }
        if (px.Length < 4L * w * h) throw new InvalidDataException($"column '{column}': the image holds {px.Length} bytes, {4L * w * h} expected for {w}×{h}×4");
        var data = new float[3 * w * h];
        int plane = w * h;
        const float Scale = 1f / 255f;
        for (int i = 0; i < plane; i++)
        {
            int o = 4 * i;
            data[i] = px[o + r] * Scale;
            data[plane + i] = px[o + 1] * Scale;
            data[2 * plane + i] = px[o + b] * Scale;
        }
        return torch.tensor(data, [3, h, w]);
    }

    /// <summary>A dense float vector as a tensor of <paramref name="shape"/> (its length must match).</summary>
    public static Tensor FromVector(in VBuffer<float> value, long[] shape, string column)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        if (value.Length != n)
            throw new InvalidDataException($"column '{column}': a value has {value.Length} elements, the column's shape [{string.Join(",", shape)}] needs {n}");
        var data = new float[n];
        value.CopyTo(data);
        return torch.tensor(data, shape);
    }

    /// <summary>An integer vector as an int64 tensor of <paramref name="shape"/>.</summary>
    public static Tensor FromVector<T>(in VBuffer<T> value, long[] shape, string column) where T : struct
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        if (value.Length != n)
            throw new InvalidDataException($"column '{column}': a value has {value.Length} elements, the column's shape [{string.Join(",", shape)}] needs {n}");
        var tmp = new T[n];
        value.CopyTo(tmp);
        var data = new long[n];
        for (long i = 0; i < n; i++) data[i] = Convert.ToInt64(tmp[i], System.Globalization.CultureInfo.InvariantCulture);
        return torch.tensor(data, shape);
    }

    /// <summary>Copies a float32 tensor (any device) into a dense vector, reusing <paramref name="dst"/>'s buffer.</summary>
    public static void ToVector(Tensor value, ref VBuffer<float> dst)
    {
        using var scope = torch.NewDisposeScope();
        var cpu = value.to(ScalarType.Float32).cpu().contiguous();
        int n = checked((int)cpu.numel());
        var editor = VBufferEditor.Create(ref dst, n);
        cpu.data<float>().CopyTo(editor.Values);
        dst = editor.Commit();
    }

    /// <summary>Copies an integer tensor into a dense int64 vector, reusing <paramref name="dst"/>'s buffer.</summary>
    public static void ToVector(Tensor value, ref VBuffer<long> dst)
    {
        using var scope = torch.NewDisposeScope();
        var cpu = value.to(ScalarType.Int64).cpu().contiguous();
        int n = checked((int)cpu.numel());
        var editor = VBufferEditor.Create(ref dst, n);
        cpu.data<long>().CopyTo(editor.Values);
        dst = editor.Commit();
    }
}
