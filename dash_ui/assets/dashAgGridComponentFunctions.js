// otel-monitor: the trace table's status pill. The value is rendered as a text child
// (React escapes it), never as HTML.
var dagcomponentfuncs = (window.dashAgGridComponentFunctions =
    window.dashAgGridComponentFunctions || {});

// A row read from the cold archive (exporters/queries/archived.py: archived: true) gets
// a small "archived" badge beside its status, in the trace table and the calls view.
dagcomponentfuncs.StatusPill = function (props) {
    var value = props.value == null ? "" : String(props.value);
    var pill = React.createElement("span", {className: "om-pill om-pill-" + value}, value);
    if (!(props.data && props.data.archived)) { return pill; }
    return React.createElement("span", null, pill, " ",
        React.createElement("span", {className: "om-archived",
                                     title: "read from the cold archive"}, "archived"));
};

// The drill-down's trace view (dash_ui/trace_view.py gives each row its depth, bar
// offset and width in percent of the trace, and colour): the process indented by
// depth, the bar on the trace's time axis.

dagcomponentfuncs.TraceName = function (props) {
    var d = props.data || {};
    var pad = Math.min(d.depth || 0, 30) * 12;
    return React.createElement("span", {style: {paddingLeft: pad + "px"}},
                               props.value == null ? "" : String(props.value));
};

dagcomponentfuncs.TraceBar = function (props) {
    var d = props.data || {};
    return React.createElement("div", {className: "om-trace-track"},
        React.createElement("div", {className: "om-trace-bar",
                                    style: {left: d.left + "%", width: d.width + "%",
                                            background: d.colour}}));
};

// The Errors tab's 6-hour sparkline: the value is the group's counts per 5 minutes,
// oldest first (exporters/queries/groups.py sparklines), drawn as an inline SVG line
// scaled to the row's own peak; the total and the peak on hover.
dagcomponentfuncs.CountSparkline = function (props) {
    var counts = Array.isArray(props.value) ? props.value.map(Number) : [];
    var w = 150, h = 22, pad = 2;
    if (!counts.length) { return React.createElement("span", null, ""); }
    var peak = Math.max.apply(null, counts.concat([1]));
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    var step = counts.length > 1 ? (w - 2 * pad) / (counts.length - 1) : 0;
    var points = counts.map(function (c, i) {
        var x = pad + i * step;
        var y = h - pad - (c / peak) * (h - 2 * pad);
        return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    return React.createElement("svg", {
            className: "om-spark", width: w, height: h, viewBox: "0 0 " + w + " " + h,
            role: "img", "aria-label": total + " in 6 h, at most " + peak + " in 5 min"},
        React.createElement("title", null,
                            total + " in the last 6 h; at most " + peak + " in 5 min"),
        React.createElement("polyline", {points: points, fill: "none",
                                         stroke: "#e55353", strokeWidth: 1.5}));
};
