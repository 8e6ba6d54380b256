// otel-monitor: the trace table's status pill. The value is rendered as a text child
// (React escapes it), never as HTML.
var dagcomponentfuncs = (window.dashAgGridComponentFunctions =
    window.dashAgGridComponentFunctions || {});

dagcomponentfuncs.StatusPill = function (props) {
    var value = props.value == null ? "" : String(props.value);
    return React.createElement("span", {className: "om-pill om-pill-" + value}, value);
};
