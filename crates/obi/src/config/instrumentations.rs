//! `instrumentations` lists (`OTEL_EBPF_TRACES_INSTRUMENTATIONS`,
//! `prometheus_export.instrumentations`...): which protocols' spans or
//! metrics an exporter reports. A protocol names itself (`span::Semantics::
//! instrumentation`), so adding one changes nothing here unless OBI adds a
//! name.

/// The names OBI accepts, including protocols obi-rs does not capture yet.
pub(crate) const NAMES: &[&str] = &[
    "http",
    "grpc",
    "sql",
    "redis",
    "kafka",
    "mqtt",
    "nats",
    "amqp",
    "mongo",
    "couchbase",
    "memcached",
    "sunrpc",
    "gpu",
    "genai",
    "dns",
];

/// A set of instrumentation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instrumentations(u32);

impl Default for Instrumentations {
    fn default() -> Self {
        Instrumentations::ALL
    }
}

/// A name that is not in [`NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown instrumentation {0:?}")]
pub(crate) struct UnknownInstrumentation(pub(crate) String);

impl Instrumentations {
    pub(crate) const ALL: Instrumentations = Instrumentations(u32::MAX);

    fn bit(name: &str) -> Option<u32> {
        NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
    }

    /// Names such as `["http", "grpc"]`, `*` or `all` for every one; blank
    /// items are skipped, so an empty list reports nothing.
    pub(crate) fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownInstrumentation> {
        let mut bits = 0;
        for name in items.into_iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()) {
            if name == "*" || name == "all" {
                return Ok(Instrumentations::ALL);
            }
            bits |= Self::bit(&name).ok_or(UnknownInstrumentation(name))?;
        }
        Ok(Instrumentations(bits))
    }

    /// Whether the instrumentation `name` (`http`, `grpc`...) is in the set.
    pub(crate) fn includes(self, name: &str) -> bool {
        Self::bit(name).is_some_and(|b| self.0 & b != 0)
    }

    /// The set as a list for logs: `*`, or the names joined by commas.
    pub(crate) fn names(self) -> String {
        if self == Self::ALL {
            return "*".into();
        }
        NAMES.iter().filter(|n| self.includes(n)).copied().collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_wildcards_and_unknown_names() {
        let parse = |v: &str| Instrumentations::parse(v.split(','));
        assert_eq!(parse("*").unwrap(), Instrumentations::ALL);
        assert_eq!(parse("ALL").unwrap(), Instrumentations::ALL);
        let grpc = parse(" grpc , sql").unwrap();
        assert!(grpc.includes("grpc") && grpc.includes("sql") && !grpc.includes("http"));
        assert_eq!(grpc.names(), "grpc,sql");
        assert!(!parse("").unwrap().includes("http"));
        assert_eq!(parse("http,soap").unwrap_err(), UnknownInstrumentation("soap".into()));
        assert!(!Instrumentations::ALL.includes("not-a-protocol"));
    }
}
