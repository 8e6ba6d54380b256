// otel-monitor: the dependency graph's layout. dash-cytoscape is given the "preset"
// layout (it never lays out by itself); this lays the graph out after each update:
// - "force": cytoscape's cose with node sizes that include their labels, for the first
//   layout. Positions are kept (per view, in localStorage): on a refresh with no new node
//   nothing moves; a new node goes to the nearest free spot around its neighbours, so no
//   known node moves.
// - "layered": breadthfirst (directed, callers before callees) turned left to right.
// Then no two label boxes may intersect: overlapping nodes are pushed apart (new nodes
// first) until none does. window.omGraphLabelBoxes() returns the boxes (for the tests).
(function () {
    var PAD = 6;  // px kept between two nodes' boxes (labels included)

    function cyOf(id) {
        var el = [].slice.call(document.querySelectorAll("#" + id + ", #" + id + " *"))
            .find(function (e) { return e._cyreg; });
        return el ? el._cyreg.cy : null;
    }

    function key(mode) { return "om-graph-positions-" + mode; }

    function load(mode) {
        try { return JSON.parse(window.localStorage.getItem(key(mode))) || {}; }
        catch (err) { return {}; }
    }

    function save(cy, mode) {
        var out = load(mode);
        cy.nodes().forEach(function (n) { out[n.id()] = n.position(); });
        try { window.localStorage.setItem(key(mode), JSON.stringify(out)); } catch (err) {}
    }

    function box(n) { return n.boundingBox({includeLabels: true, includeOverlays: false}); }

    function overlap(a, b) {
        var dx = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1) + PAD;
        var dy = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1) + PAD;
        return dx > 0 && dy > 0 ? {dx: dx, dy: dy} : null;
    }

    // Push overlapping nodes apart along the axis of least overlap; a node in `fresh`
    // moves first (so the known ones keep their place when they can).
    function separate(cy, fresh) {
        var nodes = cy.nodes().toArray();
        for (var round = 0; round < 200; round++) {
            var moved = false;
            var boxes = nodes.map(box);
            for (var i = 0; i < nodes.length; i++) {
                for (var j = i + 1; j < nodes.length; j++) {
                    var o = overlap(boxes[i], boxes[j]);
                    if (!o) { continue; }
                    var a = nodes[i], b = nodes[j];
                    var mover = fresh[b.id()] || !fresh[a.id()] ? b : a;
                    var other = mover === b ? a : b;
                    var p = mover.position(), q = other.position();
                    var pos = {x: p.x, y: p.y};
                    if (o.dx < o.dy) { pos.x += (p.x >= q.x ? 1 : -1) * o.dx; }
                    else { pos.y += (p.y >= q.y ? 1 : -1) * o.dy; }
                    mover.position(pos);
                    var m = mover === b ? j : i;
                    boxes[m] = box(mover);   // only the mover's box changed
                    moved = true;
                }
            }
            if (!moved) { return; }
        }
    }

    // Run a layout; resolves when it has stopped (cose runs over several frames).
    function run(cy, options) {
        var layout = cy.layout(options);
        var done = layout.promiseOn("layoutstop");
        layout.run();
        return done;
    }

    function layered(cy) {
        var roots = cy.nodes().filter(function (n) { return n.indegree(false) === 0; });
        return run(cy, {name: "breadthfirst", directed: true, roots: roots, spacingFactor: 1.1,
                        nodeDimensionsIncludeLabels: true, animate: false, fit: false})
            .then(function () {
                // top-down -> left to right: depth along x, siblings along y
                cy.nodes().positions(function (n) {
                    var p = n.position();
                    return {x: p.y * 2.2, y: p.x * 0.6};
                });
            });
    }

    function force(cy, known) {
        cy.nodes().forEach(function (n) {
            if (known[n.id()]) { n.lock(); }
        });
        // coolingFactor 0.95 (cose's default 0.99): the temperature falls below minTemp
        // in ~135 iterations instead of ~690; on the 50-node bench graph no label box
        // overlaps after it either (before separate), and the layout takes a third of the
        // time (17 vs 51 ms warm, ~150 ms cold) on the first render's busy main thread.
        return run(cy, {name: "cose", animate: false, fit: false, randomize: false,
                        nodeDimensionsIncludeLabels: true, idealEdgeLength: 50,
                        nodeRepulsion: function () { return 6000; }, numIter: 1000,
                        coolingFactor: 0.95,
                        gravity: 2, componentSpacing: 30, nestingFactor: 1})
            .then(function () { cy.nodes().unlock(); });
    }

    // One layout at a time: a call while one runs is queued behind it.
    var queue = Promise.resolve();
    function clear(cy, n) {
        var b = box(n);
        return cy.nodes().every(function (m) {
            return m === n || !m.scratch("_omPlaced") || !overlap(b, box(m));
        });
    }

    function place(cy, known, fresh) {
        cy.nodes().forEach(function (n) { n.scratch("_omPlaced", !!known[n.id()]); });
        var all = cy.nodes().filter(function (n) { return known[n.id()]; }).boundingBox();
        cy.nodes().forEach(function (n) {
            if (!fresh[n.id()]) { return; }
            var near = n.neighborhood("node").filter(function (m) { return m.scratch("_omPlaced"); });
            var c = near.length ? near.boundingBox() : null;
            var cx = c ? (c.x1 + c.x2) / 2 : all.x2 + 80;
            var cy0 = c ? (c.y1 + c.y2) / 2 : (all.y1 + all.y2) / 2;
            search:
            for (var r = 60; r < 3000; r += 40) {
                for (var k = 0; k < 12; k++) {
                    var t = k * Math.PI / 6;
                    n.position({x: cx + r * Math.cos(t), y: cy0 + r * Math.sin(t)});
                    if (clear(cy, n)) { break search; }
                }
            }
            n.scratch("_omPlaced", true);
        });
    }

    window.omGraphLayout = function (mode) {
        queue = queue.then(function () { return layoutNow(mode); })
            .catch(function (err) { console.error(err); });
        return queue;
    };

    // The graph's update asks for its layout here (dash_ui/callbacks/graph.py). Until
    // that layout is done nodes may still move (cose, separate, cy.fit), and it starts a
    // timer later: a reader of positions (the tests' graph_settled) waits for
    // omGraphSettled(), not for a guessed time.
    var pending = 0;        // layouts asked for, not yet done
    var laidOutIds = null;  // the node ids the last layout done covered
    window.omGraphLayoutSoon = function (mode) {
        pending++;          // now, not in the timer: no gap in which nothing is pending
        setTimeout(function () {
            var done = function () { pending--; };   // also when the layout failed
            Promise.resolve().then(function () { return window.omGraphLayout(mode); })
                .then(done, done);
        }, 60);  // after dash-cytoscape has applied the new elements
    };

    // True when no layout is asked for or running and the last one covered the graph's
    // current nodes (a node shown, whose layout is not asked for yet, is not settled).
    window.omGraphSettled = function () {
        var cy = cyOf("om-graph");
        return !!cy && pending === 0 && laidOutIds === idsOf(cy);
    };

    function idsOf(cy) {
        return JSON.stringify(cy.nodes().map(function (n) { return n.id(); }).sort());
    }

    // cytoscape keeps its container's place on screen from its mount (or the last scroll
    // or resize); the lines above the graph can grow after that (26 px on load), and a
    // pointer is then mapped to where the graph was: a hover or click misses its node.
    // Entering the graph, it reads its place anew (cy.resize(): cytoscape's remedy for a
    // container that moved; dash-cytoscape calls it on each tap too).
    document.addEventListener("mouseover", function (e) {
        var graph = document.getElementById("om-graph");
        if (!graph || !graph.contains(e.target) || graph.contains(e.relatedTarget)) { return; }
        var cy = cyOf("om-graph");
        if (cy) { cy.resize(); }
    }, true);   // capture: before cytoscape's own handlers of this move

    function layoutNow(mode) {
        var cy = cyOf("om-graph");
        if (!cy) { return null; }
        if (cy.nodes().length === 0) { laidOutIds = idsOf(cy); return null; }
        mode = mode === "layered" ? "layered" : "force";
        var saved = load(mode);
        var known = {}, fresh = {}, first = true;
        cy.nodes().forEach(function (n) {
            if (saved[n.id()]) { known[n.id()] = true; first = false; }
            else { fresh[n.id()] = true; }
        });
        var changed = mode !== window.omGraphMode;
        window.omGraphMode = null;   // laying out
        cy.batch(function () {
            cy.nodes().forEach(function (n) { if (known[n.id()]) { n.position(saved[n.id()]); } });
        });
        var nFresh = Object.keys(fresh).length;
        var laid = Promise.resolve();
        if (nFresh > 0 || first) {
            if (mode === "layered") {
                laid = layered(cy);
                fresh = {};
                cy.nodes().forEach(function (n) { fresh[n.id()] = true; });
            } else if (first) {
                laid = force(cy, {});
            } else {
                // a new node goes to the nearest free spot around its placed neighbours
                // (or beside the graph); the force layout moves no known node
                place(cy, known, fresh);
            }
        }
        return laid.then(function () {
            separate(cy, fresh);
            save(cy, mode);
            if (first || changed || nFresh > 0) { cy.fit(undefined, 30); }
            window.omGraphMode = mode;   // laid out in this view
            laidOutIds = idsOf(cy);
        });
    }

    // Every node's box, labels included, in model coordinates (the tests' measure).
    window.omGraphLabelBoxes = function () {
        var cy = cyOf("om-graph");
        return cy ? cy.nodes().map(function (n) {
            var b = box(n);
            return {id: n.id(), x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2};
        }) : [];
    };
})();
