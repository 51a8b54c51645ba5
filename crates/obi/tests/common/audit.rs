//! The wrong-parent audit: every concurrency test states, through the paths
//! its apps use, which server request caused each client call, and this
//! counts how the agent's parents compare with that truth.
//!
//! Convention: a server request `/fanout/<id>/...` makes its outgoing calls
//! to `/leaf/<id>/<k>` (HTTP, or the gRPC method of that name), or on key `leaf:<id>:<k>` (a database or
//! cache command, the key in its statement). A client span for such a call is
//! - right when its parent is the server span of `/fanout/<id>/...` (the
//!   span itself, or its "processing" child when OTLP splits it);
//! - a root when it has no parent (the agent said it could not know);
//! - wrong otherwise.
//!
//! Each audit prints one line and appends it to `$OBI_PARENT_AUDIT` when set;
//! `scripts/test.sh` sums the file and fails the suite on any wrong parent.

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{Agent, apps_dir, attr, field, host_port, is_type, python, spawn};

/// A burst of `/fanout/<via>-<i>/<calls>?via=<via>` requests.
pub(crate) struct Fanout<'a> {
    pub(crate) requests: usize,
    /// Requests in flight at once (one connection each).
    pub(crate) concurrency: usize,
    /// Outgoing calls each request makes.
    pub(crate) calls: usize,
    /// How the app makes its calls (and the prefix of this burst's ids).
    pub(crate) via: &'a str,
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends `load` to the app on `front`, whose calls go to the Python test
/// server (`apps/http_server.py`) on `back`,
/// waits for every span (front server spans, client spans, back server
/// spans, exact counts) and returns this burst's spans.
pub(crate) fn fanout_spans(agent: &Agent, front: u16, back: u16, load: &Fanout) -> Vec<Value> {
    fanout_spans_to(agent, front, "http", back, load)
}

/// [`fanout_spans`] with calls to `<scheme>://127.0.0.1:<back>` (a server
/// answering "leaf\n" on `/leaf/...`).
pub(crate) fn fanout_spans_to(agent: &Agent, front: u16, scheme: &str, back: u16, load: &Fanout) -> Vec<Value> {
    let Fanout { requests: n, concurrency, calls, via } = *load;
    let base = url_encode(&format!("{scheme}://127.0.0.1:{back}"));
    let url = format!("http://127.0.0.1:{front}/fanout/{via}-{{i}}/{calls}?via={via}&base={base}");
    let mut client = spawn(
        "fanout-load",
        Command::new(python()).arg(apps_dir().join("concurrent_get.py")).args([
            &url,
            &n.to_string(),
            &concurrency.to_string(),
        ]),
    );
    assert!(client.wait_exit(Duration::from_secs(120)).is_some_and(|s| s.success()), "fanout load failed");
    assert_eq!(client.lines().last().map(String::as_str), Some(format!("ok {n}").as_str()));
    let ours = |s: &Value| {
        let url = attr(s, "url");
        url.starts_with(&format!("/fanout/{via}-")) || url.starts_with(&format!("/leaf/{via}-"))
    };
    let wait = Duration::from_secs(30);
    let fronts = agent.wait_spans(n, wait, |s| ours(s) && is_type(s, "HTTP") && host_port(s) == front);
    let clients = agent.wait_spans(n * calls, wait, |s| ours(s) && is_type(s, "HTTPClient") && host_port(s) == back);
    let backs = agent.wait_spans(n * calls, wait, |s| ours(s) && is_type(s, "HTTP") && host_port(s) == back);
    assert_eq!((fronts.len(), clients.len(), backs.len()), (n, n * calls, n * calls), "spans of {via}");
    // Sizes and statuses under concurrency: every call was answered by the
    // leaf route of the Python test server ("leaf\n", 5 bytes).
    for back in &backs {
        assert_eq!((attr(back, "status"), attr(back, "responseLen")), ("200", "5"), "{back}");
    }
    agent.spans().into_iter().filter(ours).collect()
}

/// Sends `requests` GETs of `/fanout/db-<i>/<calls>` to the database fanout
/// app (`apps/db_fanout_server.py`) on `front`, 10 at a time, and returns its
/// server spans and the database calls (`is_call`), exact counts checked.
pub(crate) fn db_fanout_spans(
    agent: &Agent,
    front: u16,
    requests: usize,
    calls: usize,
    is_call: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut load = spawn(
        "db-fanout-load",
        Command::new(python()).arg(apps_dir().join("concurrent_get.py")).args([
            &format!("http://127.0.0.1:{front}/fanout/db-{{i}}/{calls}"),
            &requests.to_string(),
            "10",
        ]),
    );
    assert!(load.wait_exit(Duration::from_secs(120)).is_some_and(|s| s.success()), "db fanout load failed");
    assert_eq!(load.lines().last().map(String::as_str), Some(format!("ok {requests}").as_str()));
    let wait = Duration::from_secs(30);
    let servers = agent.wait_spans(requests, wait, |s| is_type(s, "HTTP") && host_port(s) == front);
    let db = agent.wait_spans(requests * calls, wait, is_call);
    assert_eq!((servers.len(), db.len()), (requests, requests * calls), "{db:#?}");
    servers.into_iter().chain(db).collect()
}

const NO_PARENT: &str = "0000000000000000";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Audit {
    pub(crate) right: usize,
    pub(crate) root: usize,
    pub(crate) wrong: usize,
}

impl Audit {
    pub(crate) fn total(&self) -> usize {
        self.right + self.root + self.wrong
    }
}

/// The id in `/<kind>/<id>/...`, if the path has that shape.
fn id_in(path: &str, kind: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    (parts.next()? == kind).then_some(())?;
    parts.next().filter(|id| !id.is_empty()).map(str::to_owned)
}

/// The request id a client span's call names: `/leaf/<id>/...` in its URL
/// or gRPC method, or a `leaf:<id>:` key in its statement.
fn leaf_id(client: &Value) -> Option<String> {
    if let Some(id) = id_in(attr(client, "url"), "leaf").or_else(|| id_in(attr(client, "method"), "leaf")) {
        return Some(id);
    }
    let statement = attr(client, "statement");
    let rest = &statement[statement.find("leaf:")? + "leaf:".len()..];
    rest.split(':').next().filter(|id| !id.is_empty() && rest.contains(':')).map(str::to_owned)
}

/// Classifies the `/leaf/...` client spans among `spans` (JSON printer
/// objects) against the `/fanout/...` server spans, records the result under
/// `test`, and returns it.
pub(crate) fn parent_audit(test: &str, spans: &[Value]) -> Audit {
    let (audit, wrong_examples) = classify(spans);
    let line = format!("parent-audit test={test} right={} root={} wrong={}", audit.right, audit.root, audit.wrong);
    eprintln!("{line}");
    for example in &wrong_examples {
        eprintln!("  wrong parent: {example}");
    }
    if let Ok(path) = std::env::var("OBI_PARENT_AUDIT")
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = writeln!(f, "{line}");
    }
    audit
}

/// The audit of `spans`, and a few of the wrong parents as examples.
fn classify(spans: &[Value]) -> (Audit, Vec<String>) {
    let servers: HashMap<String, (&str, &str)> = spans
        .iter()
        .filter(|s| is_type(s, "HTTP"))
        .filter_map(|s| Some((id_in(attr(s, "url"), "fanout")?, (field(s, "spanID"), field(s, "traceID")))))
        .collect();
    let mut audit = Audit::default();
    let mut wrong_examples = Vec::new();
    for client in spans.iter().filter(|s| field(s, "kind") == "SPAN_KIND_CLIENT") {
        let Some(id) = leaf_id(client) else { continue };
        let parent = field(client, "parentSpanID");
        if parent == NO_PARENT || parent.is_empty() {
            audit.root += 1;
        } else if servers.get(&id).is_some_and(|(span, trace)| *span == parent && *trace == field(client, "traceID")) {
            audit.right += 1;
        } else {
            audit.wrong += 1;
            if wrong_examples.len() < 3 {
                wrong_examples.push(format!("{} parent={parent}", attr(client, "url")));
            }
        }
    }
    (audit, wrong_examples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(t: &str, url: &str, span: &str, parent: &str, trace: &str) -> Value {
        let kind = if t.ends_with("Client") { "SPAN_KIND_CLIENT" } else { "SPAN_KIND_SERVER" };
        json!({"type": t, "kind": kind, "spanID": span, "parentSpanID": parent, "traceID": trace, "attributes": {"url": url}})
    }

    fn db_span(statement: &str, span: &str, parent: &str, trace: &str) -> Value {
        json!({"type": "RedisClient", "kind": "SPAN_KIND_CLIENT", "spanID": span, "parentSpanID": parent,
               "traceID": trace, "attributes": {"statement": statement}})
    }

    #[test]
    fn database_calls_are_audited_by_their_key() {
        let spans = vec![
            span("HTTP", "/fanout/db-1/2", "a1", NO_PARENT, "t1"),
            span("HTTP", "/fanout/db-2/2", "a2", NO_PARENT, "t2"),
            db_span("GET leaf:db-1:0", "c1", "a1", "t1"),
            db_span("GET leaf:db-2:0", "c2", "a1", "t1"),
            db_span("GET leaf:db-2:1", "c3", NO_PARENT, "t3"),
            db_span("GET other", "c4", "a2", "t2"),
        ];
        let (a, _) = classify(&spans);
        assert_eq!(a, Audit { right: 1, root: 1, wrong: 1 });
    }

    #[test]
    fn classifies_right_root_and_wrong() {
        let spans = vec![
            span("HTTP", "/fanout/1/2", "a1", NO_PARENT, "t1"),
            span("HTTP", "/fanout/2/2", "a2", NO_PARENT, "t2"),
            span("HTTPClient", "/leaf/1/0", "c1", "a1", "t1"),
            span("HTTPClient", "/leaf/1/1", "c2", NO_PARENT, "t9"),
            span("HTTPClient", "/leaf/2/0", "c3", "a1", "t1"),
            span("HTTPClient", "/leaf/2/1", "c4", "a2", "t1"),
            span("HTTPClient", "/other", "c5", "a2", "t2"),
        ];
        let (a, examples) = classify(&spans);
        assert_eq!(examples.len(), 2);
        assert_eq!(a, Audit { right: 1, root: 1, wrong: 2 });
        assert_eq!(a.total(), 4);
    }
}
