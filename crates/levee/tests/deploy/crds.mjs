// Validate the chart's Prometheus-operator objects (ServiceMonitor, PrometheusRule) against the
// schemas of @kubernetes-models/prometheus-operator, for deploy.rs.
// usage: node crds.mjs MANIFESTS.json   (prints one line per object; exits 1 on the first error)
import { readFileSync } from "node:fs";
import { PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = { ServiceMonitor, PrometheusRule };
const objects = JSON.parse(readFileSync(process.argv[2], "utf8")).map((o) => o.object);
let checked = 0;
for (const o of objects) {
  if (!o.apiVersion.startsWith("monitoring.coreos.com/")) continue;
  const Model = models[o.kind];
  if (!Model) {
    console.error(`no schema for ${o.kind}`);
    process.exit(1);
  }
  try {
    new Model(o).validate();
  } catch (e) {
    console.error(`${o.kind} ${o.metadata.name}: ${e.message}`);
    process.exit(1);
  }
  console.log(`valid ${o.kind} ${o.metadata.name}`);
  checked += 1;
}
if (checked === 0) {
  console.error("no Prometheus-operator object to validate");
  process.exit(1);
}
