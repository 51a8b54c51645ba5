//! Reading the agent's Prometheus exposition in tests: scrape, parse, pick samples.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::curl;

/// GETs `http://127.0.0.1:port{path}` and returns the body.
pub(crate) fn scrape(port: u16, path: &str) -> String {
    curl(&[&format!("http://127.0.0.1:{port}{path}")])
}

/// One sample of an exposition: metric name, labels, value.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// Parses the text format (enough for what the agent writes: no timestamps,
/// label values with `\"`, `\\` and `\n` escapes).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, mut rest) = match head.find('{') {
            Some(i) => (&head[..i], &head[i + 1..head.len() - 1]),
            None => (head, ""),
        };
        let mut labels = BTreeMap::new();
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").unwrap();
            let mut v = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next().unwrap() {
                    (_, '\\') => match chars.next().unwrap().1 {
                        'n' => v.push('\n'),
                        c => v.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => v.push(c),
                }
            };
            labels.insert(k.to_string(), v);
            rest = r[end + 1..].trim_start_matches(',');
        }
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// Samples named `name` whose labels include every `(key, value)` of `with`.
pub(crate) fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

pub(crate) fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    find(samples, name, with).iter().map(|s| s.value).sum()
}

/// Scrapes until `done` holds for the parsed page or the timeout passes;
/// returns the last page.
pub(crate) fn scrape_until(port: u16, timeout: Duration, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + timeout;
    loop {
        let samples = parse(&scrape(port, "/metrics"));
        if done(&samples) || Instant::now() >= deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent's internal metrics (`/internal/metrics`, published once a
/// second) once `name` reaches `at_least`, or after `timeout`.
pub(crate) fn internal_when(port: u16, name: &str, at_least: f64, timeout: Duration) -> Vec<Sample> {
    let deadline = Instant::now() + timeout;
    loop {
        let page = parse(&scrape(port, "/internal/metrics"));
        if total(&page, name, &[]) >= at_least || Instant::now() >= deadline {
            return page;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Nothing was lost between the kernel and the spans: no ring-buffer drop,
/// no parse failure, no orphan response, no unanswered request, no ignored
/// connection.
pub(crate) fn assert_nothing_lost(internal: &[Sample]) {
    assert_eq!(total(internal, "obi_exporter_dropped_spans_total", &[]), 0.0);
    for lost in [
        "obi_ebpf_ringbuf_dropped_events_total",
        "obi_parse_failures_total",
        "obi_orphan_responses_total",
        "obi_unanswered_requests_total",
        "obi_ignored_connections_total",
    ] {
        assert_eq!(total(internal, lost, &[]), 0.0, "{lost}");
    }
}
