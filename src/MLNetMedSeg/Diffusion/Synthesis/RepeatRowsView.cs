using MLNetMedSeg.Data;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// Each row of a source repeated k times, in order: the row at position r·k + j (j = 0..k − 1; r the source
/// cursor's position, which a one-row view may set) shows source row r's values (the
/// source cursor's objects, valid until it moves). Not shufflable. Under a <see cref="BatchedMapView"/> it gives the
/// k-samples-per-row views of the synthesis stages: the batch function reads (r, j) from the row's position.
/// </summary>
internal sealed class RepeatRowsView : IDataView
{
    private readonly IDataView _source;
    private readonly int _k;

    public RepeatRowsView(IDataView source, int k)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        _source = source;
        _k = k;
    }

    public DataViewSchema Schema => _source.Schema;

    public long? GetRowCount() => _source.GetRowCount() * _k;

    public bool CanShuffle => false;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        if (rand is not null) throw new InvalidOperationException("the rows of a sampling stage's output cannot be shuffled; cache them first");
        return new Cursor(this, _source.GetRowCursor(columnsNeeded));
    }

    private sealed class Cursor(RepeatRowsView view, DataViewRowCursor src) : DataViewRowCursor
    {
        private int _j = -1;
        private bool _onRow;

        public override DataViewSchema Schema => view.Schema;

        public override bool IsColumnActive(DataViewSchema.Column column) => src.IsColumnActive(column);

        public override object GetValue(DataViewSchema.Column column)
        {
            if (!_onRow) throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
            return src.GetValue(column);
        }

        public override bool MoveNext()
        {
            if (_onRow && _j + 1 < view._k)
            {
                _j++;
                Position = src.Position * view._k + _j;
                return true;
            }
            _onRow = src.MoveNext();
            if (!_onRow)
            {
                Position = -1;
                return false;
            }
            _j = 0;
            Position = src.Position * view._k;
            return true;
        }

        protected override void Dispose(bool disposing) => src.Dispose();
    }
}
