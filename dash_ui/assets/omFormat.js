// otel-monitor: how the trace table writes a process name and an instant.

// "pkg.mod.Class.method" -> {name: "Class.method", module: "pkg.mod"}: the last part,
// with the classes (capitalised parts) and "<locals>" scopes in front of it.
window.omProcessParts = function (full) {
    var parts = String(full).split(".");
    var i = parts.length - 1;
    while (i > 0) {
        var prev = parts[i - 1];
        if (/^[A-Z]/.test(prev) || prev === "<locals>" || parts[i] === "<locals>") {
            i -= 1;
        } else {
            break;
        }
    }
    if (i > 0 && parts[i] === "<locals>") { i -= 1; }
    return {name: parts.slice(i).join("."), module: parts.slice(0, i).join(".")};
};

// UTC or the browser's zone for the Timestamp cells (the "UTC" switch above the grid).
window.omUtc = false;

// ns since the epoch -> "HH:MM:SS.mmm" (in UTC or the browser's local zone)
window.omClock = function (ns, utc) {
    if (ns == null || ns === "") { return ""; }
    var ms = Math.floor(Number(ns) / 1e6);
    var d = new Date(ms);
    if (isNaN(d.getTime())) { return ""; }
    function two(n) { return (n < 10 ? "0" : "") + n; }
    function three(n) { return (n < 10 ? "00" : n < 100 ? "0" : "") + n; }
    var h = utc ? d.getUTCHours() : d.getHours();
    var m = utc ? d.getUTCMinutes() : d.getMinutes();
    var s = utc ? d.getUTCSeconds() : d.getSeconds();
    var f = utc ? d.getUTCMilliseconds() : d.getMilliseconds();
    return two(h) + ":" + two(m) + ":" + two(s) + "." + three(f);
};

// The grid's own function namespace (what columnDefs' {"function": ...} strings can call).
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});
dagfuncs.omClockCell = function (ns) { return window.omClock(ns, window.omUtc); };
dagfuncs.omProcessShort = function (full) {
    return full == null ? "" : window.omProcessParts(full).name;
};
