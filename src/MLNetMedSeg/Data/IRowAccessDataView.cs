namespace MLNetMedSeg.Data;

/// <summary>
/// A data view whose rows can be visited in any given order by index, without reading the others: the basis of
/// lazy, shufflable subsets (splits, k-fold, seeded shuffles). <see cref="RowDataView"/> implements it, and
/// <see cref="MappedDataView"/> does whenever its source does (it implements the interface always; ask
/// <see cref="MappedDataView.HasIndexedAccess"/> whether a view really has row access).
/// </summary>
internal interface IRowAccessDataView : IDataView
{
    /// <summary>Number of rows.</summary>
    long RowCount { get; }

    /// <summary>
    /// A cursor visiting exactly the rows <paramref name="rows"/> (indices into this view, 0-based), in that order;
    /// <see cref="DataViewRowCursor.Position"/> counts from 0 along <paramref name="rows"/>.
    /// </summary>
    DataViewRowCursor GetIndexedRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, IReadOnlyList<long> rows);
}
