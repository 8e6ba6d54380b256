// otel-monitor: the trace table's live refresh keeps the user's place. At the top of the
// table new rows simply show up; scrolled down, the row at the top edge stays under it
// while newer rows arrive above (the scroll offset follows that row), so nothing the
// user is reading moves. Called by the 5-second tick (dash_ui/callbacks/table.py).
window.omLiveRefresh = function (gridId) {
    var api = dash_ag_grid.getApi(gridId);
    var viewport = document.querySelector("#" + gridId + " .ag-body-viewport");
    var top = viewport ? viewport.scrollTop : 0;
    var anchor = null;
    if (top > 0) {
        var rowHeight = api.getSizesForCurrentTheme().rowHeight;
        anchor = api.getDisplayedRowAtIndex(Math.floor(top / rowHeight));
    }
    if (!anchor || anchor.id == null) {
        api.refreshInfiniteCache();
        return;
    }
    var anchorId = anchor.id;
    var offset = top - anchor.rowTop;
    var done = false;
    function follow() {
        var node = api.getRowNode(anchorId);
        if (done || !node || node.rowTop == null || !node.data) {
            return;
        }
        done = true;
        api.removeEventListener("modelUpdated", follow);
        if (viewport.scrollTop === top) {  // the user has not scrolled meanwhile
            viewport.scrollTop = node.rowTop + offset;
        }
    }
    api.addEventListener("modelUpdated", follow);
    setTimeout(function () {  // the block never came back: stop waiting for it
        done = true;
        api.removeEventListener("modelUpdated", follow);
    }, 4000);
    api.refreshInfiniteCache();
};
