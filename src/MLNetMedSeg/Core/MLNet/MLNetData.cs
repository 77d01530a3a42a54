using MLNetMedSeg.Data;
using MLDataView = Microsoft.ML.IDataView;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>ML.NET data views as the library's stages read them.</summary>
public static class MLNetData
{
    /// <summary>
    /// The columns of <paramref name="input"/> the library can read, converted lazily (<see cref="TensorColumns"/>).
    /// Training shuffles every epoch: data that cannot be shuffled (a streaming loader) is read once into memory.
    /// </summary>
    public static Data.IDataView ForTraining(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var view = new MLNetInputView(input);
        return view.CanShuffle ? view : CachedDataView.Create(view);
    }

    /// <summary>The columns of <paramref name="input"/> the library can read, converted lazily, in the input's order.</summary>
    public static Data.IDataView AsLibraryView(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MLNetInputView(input);
    }
}
