//! The PromQL of the deployment artefacts: the dashboard's panel queries and the alerting
//! rules' expressions, read from `deploy/` the way Grafana and Prometheus read them.

use serde_json::Value;

fn read(path: &str) -> String {
    let p = super::workspace().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The dashboard JSON.
pub fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/levee.json")).expect("levee.json parses")
}

/// `(panel title, query)` for every target of every panel.
pub fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().expect("title").to_owned();
            out.push((title, t["expr"].as_str().expect("expr").to_owned()));
        }
    }
    out
}

/// A dashboard query as Prometheus receives it: Grafana's `$__rate_interval` and the
/// `instance` variable (at "All") substituted.
pub fn as_sent(query: &str, rate_interval: &str) -> String {
    query
        .replace("$__rate_interval", rate_interval)
        .replace("$instance", ".*")
}

/// `(alert name, expression)` of every rule in `deploy/prometheus/rules.yml`, in order
/// (each rule's `expr:` is one line).
pub fn rules() -> Vec<(String, String)> {
    let text = read("deploy/prometheus/rules.yml");
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- alert: ") {
            name = Some(n.to_owned());
        } else if let Some(e) = line.strip_prefix("expr: ") {
            out.push((name.take().expect("expr after alert"), e.to_owned()));
        }
    }
    out
}

/// Every metric selector of a query: a `levee_` name with its label matchers, if any.
pub fn selectors(query: &str) -> Vec<String> {
    let b = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = query[i..].find("levee_").map(|k| k + i) {
        let preceded = at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let mut end = at;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if !preceded {
            if b.get(end) == Some(&b'{') {
                end += query[end..].find('}').expect("closing brace") + 1;
            }
            out.push(query[at..end].to_owned());
        }
        i = end;
    }
    out
}

/// The left side of a rule whose expression is one comparison with a number
/// (`expr > 600`), which must have data whenever the metric is exported.
pub fn threshold_lhs(expr: &str) -> Option<&str> {
    if [" and ", " or ", " unless "]
        .iter()
        .any(|op| expr.contains(op))
    {
        return None;
    }
    for op in [" > ", " < ", " == ", " >= ", " <= ", " != "] {
        if let Some((lhs, rhs)) = expr.rsplit_once(op) {
            if rhs.trim().parse::<f64>().is_ok() {
                return Some(lhs.trim());
            }
        }
    }
    None
}
