"""Lint and render the Helm chart offline (helm-python-sdk), for deploy.rs.

usage: render.py CHART OUT_DIR [VALUES.yaml ...]
Writes OUT_DIR/lint.json (the lint report), OUT_DIR/manifests.json (every rendered object,
as JSON) and OUT_DIR/core.yaml (the objects of core Kubernetes API groups, for
kubernetes-validate). Exits non-zero when the chart fails to load, lint or render.
"""

import json
import os
import sys

import helm_python as helm
import yaml

CUSTOM_GROUPS = ("monitoring.coreos.com/", "kafka.strimzi.io/")


def main() -> int:
    chart_dir, out = sys.argv[1], sys.argv[2]
    values = {}
    for path in sys.argv[3:]:
        with open(path, encoding="utf-8") as f:
            values = merge(values, yaml.safe_load(f) or {})
    os.makedirs(out, exist_ok=True)
    report = helm.lint(chart_dir, values, strict=True, kube_version="v1.33.0")
    with open(os.path.join(out, "lint.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    chart = helm.Chart.load(chart_dir)
    chart.validate_schema(values)
    rendered = chart.render(values, name="levee", namespace="trust-safety", is_install=True)
    objects = []
    for template, text in sorted(rendered.items()):
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append({"template": template, "object": doc})
    with open(os.path.join(out, "manifests.json"), "w", encoding="utf-8") as f:
        json.dump(objects, f, indent=1)
    core = [o["object"] for o in objects if not o["object"]["apiVersion"].startswith(CUSTOM_GROUPS)]
    with open(os.path.join(out, "core.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    return 0


def merge(base: dict, over: dict) -> dict:
    """Helm's own rule for several -f files: maps merge key by key, the later file wins."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


if __name__ == "__main__":
    sys.exit(main())
