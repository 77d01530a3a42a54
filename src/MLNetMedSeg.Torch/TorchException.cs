namespace MLNetMedSeg.Torch;

/// <summary>What kind of failure libtorch reported.</summary>
public enum TorchErrorKind
{
    /// <summary>A general libtorch error (c10::Error), e.g. a shape mismatch.</summary>
    General = 1,
    /// <summary>Host or device memory was exhausted.</summary>
    OutOfMemory = 2,
    /// <summary>An index or dimension was out of range (c10::IndexError).</summary>
    Index = 3,
    /// <summary>An argument had an invalid value (c10::ValueError).</summary>
    Value = 4,
    /// <summary>An argument had the wrong dtype or type (c10::TypeError).</summary>
    Type = 5,
    /// <summary>The operation is not implemented for these inputs or this device (c10::NotImplementedError).</summary>
    NotImplemented = 6,
    /// <summary>A native exception of unknown type.</summary>
    Unknown = 7,
}

/// <summary>A libtorch error, carrying libtorch's own message (without its C++ backtrace).</summary>
public class TorchException : Exception
{
    public TorchException(string message, TorchErrorKind kind = TorchErrorKind.General) : base(message) => Kind = kind;

    /// <summary>The category of the failure.</summary>
    public TorchErrorKind Kind { get; }

    internal static TorchException FromStatus(int status, string message)
    {
        var kind = Enum.IsDefined(typeof(TorchErrorKind), status) ? (TorchErrorKind)status : TorchErrorKind.Unknown;
        return kind switch
        {
            TorchErrorKind.OutOfMemory => new TorchOutOfMemoryException(message),
            TorchErrorKind.Index => new TorchIndexException(message),
            TorchErrorKind.Value => new TorchValueException(message),
            TorchErrorKind.Type => new TorchTypeException(message),
            _ => new TorchException(message, kind),
        };
    }
}

/// <summary>Host or device memory was exhausted.</summary>
public sealed class TorchOutOfMemoryException(string message) : TorchException(message, TorchErrorKind.OutOfMemory);

/// <summary>An index or dimension was out of range.</summary>
public sealed class TorchIndexException(string message) : TorchException(message, TorchErrorKind.Index);

/// <summary>An argument had an invalid value.</summary>
public sealed class TorchValueException(string message) : TorchException(message, TorchErrorKind.Value);

/// <summary>An argument had the wrong dtype or type.</summary>
public sealed class TorchTypeException(string message) : TorchException(message, TorchErrorKind.Type);
