// otel-monitor: the trace table's status pill. The value is rendered as a text child
// (React escapes it), never as HTML.
var dagcomponentfuncs = (window.dashAgGridComponentFunctions =
    window.dashAgGridComponentFunctions || {});

dagcomponentfuncs.StatusPill = function (props) {
    var value = props.value == null ? "" : String(props.value);
    return React.createElement("span", {className: "om-pill om-pill-" + value}, value);
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
