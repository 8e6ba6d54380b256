// A Node.js service sending spans to `otel-monitor serve` with the OpenTelemetry JS SDK
// 2.x: `node send.mjs URL TOKEN proto|json`. Its resource names the service, the host
// and this process's pid; it sends a server span with attributes of every OTel type and
// an event, an OK child with no attribute, and a span that fails with an exception.
// Prints the span ids it sent (hex, by role) and its pid, as JSON.
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";

const [url, token, protocol] = process.argv.slice(2);
const Exporter = protocol === "json" ? JsonExporter : ProtoExporter;
const exporter = new Exporter({
  url: `${url}/v1/traces`,
  headers: { authorization: `Bearer ${token}` },
});
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({
    "service.name": `node-shop-${protocol}`,
    "host.name": "node-host",
    "process.pid": process.pid,
  }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer("node-shop");

const server = tracer.startSpan("GET /orders", {
  kind: SpanKind.SERVER,
  attributes: {
    "http.request.method": "GET",
    "http.response.status_code": 200,
    "order.ratio": 0.5,
    "order.express": true,
    "order.items": ["apple", "pear"],
    "order.quantities": [1, 2],
  },
});
server.addEvent("cache.miss", { "cache.key": "orders:7" });
const child = tracer.startSpan("db.query", {}, trace.setSpan(ROOT_CONTEXT, server));
child.end();
const failing = tracer.startSpan("charge", {}, trace.setSpan(ROOT_CONTEXT, server));
failing.recordException(new TypeError("card declined"));
failing.setStatus({ code: SpanStatusCode.ERROR, message: "card declined" });
failing.end();
server.setStatus({ code: SpanStatusCode.OK });
server.end();
await provider.shutdown();

const id = (span) => span.spanContext().spanId;
console.log(JSON.stringify({
  server: id(server), child: id(child), failing: id(failing), pid: process.pid,
}));
