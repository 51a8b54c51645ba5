//! The routes decorator (`routes` section): sets `http.route` on HTTP spans
//! from `routes.patterns` or, for unmatched paths, by the `unmatched` mode,
//! and tells which signals must skip spans matching `routes.ignored_patterns`.

use crate::config::metrics::{IgnoreMode, RoutesConfig, Unmatched};
use crate::span::{Span, SpanDetail};

use super::cardinality::CardinalityLimiter;
use super::heuristic::cluster_path_into;
use super::matcher::RouteMatcher;

/// Where a decorated span goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Traces and metrics.
    Keep,
    /// Metrics only (ignored in traces).
    MetricsOnly,
    /// Traces only (ignored in metrics).
    TracesOnly,
    /// Nowhere.
    Drop,
}

impl Verdict {
    pub(crate) fn to_metrics(self) -> bool {
        matches!(self, Verdict::Keep | Verdict::MetricsOnly)
    }

    pub(crate) fn to_traces(self) -> bool {
        matches!(self, Verdict::Keep | Verdict::TracesOnly)
    }
}

/// The route of the path `/**` in `wildcard` mode (OBI's value).
pub(crate) const WILDCARD_ROUTE: &str = "/**";

pub(crate) struct RouteDecorator {
    patterns: RouteMatcher,
    ignored: RouteMatcher,
    ignore_mode: IgnoreMode,
    unmatched: Unmatched,
    wildcard: char,
    limiter: Option<CardinalityLimiter>,
}

impl RouteDecorator {
    pub(crate) fn new(cfg: &RoutesConfig) -> Self {
        RouteDecorator {
            patterns: RouteMatcher::new(&cfg.patterns),
            ignored: RouteMatcher::new(&cfg.ignored_patterns),
            ignore_mode: cfg.ignore_mode,
            unmatched: cfg.unmatched,
            wildcard: cfg.wildcard_char,
            limiter: (cfg.unmatched == Unmatched::LowCardinality)
                .then(|| CardinalityLimiter::new(cfg.max_path_segment_cardinality, cfg.wildcard_char)),
        }
    }

    /// Sets the route of an HTTP span (other spans are left alone) and says
    /// where the span goes.
    pub(crate) fn decorate(&mut self, span: &mut Span) -> Verdict {
        let SpanDetail::Http(http) = &mut span.detail else {
            return Verdict::Keep;
        };
        if !self.ignored.is_empty() && self.ignored.find(&http.path).is_some() {
            return match self.ignore_mode {
                IgnoreMode::All => Verdict::Drop,
                IgnoreMode::Traces => Verdict::MetricsOnly,
                IgnoreMode::Metrics => Verdict::TracesOnly,
            };
        }
        if let Some(route) = self.patterns.find(&http.path) {
            http.route.clear();
            http.route.push_str(route);
            return Verdict::Keep;
        }
        match self.unmatched {
            Unmatched::Heuristic => cluster_path_into(&http.path, self.wildcard, &mut http.route),
            Unmatched::Wildcard => {
                http.route.clear();
                http.route.push_str(WILDCARD_ROUTE);
            }
            Unmatched::Path => {
                http.route.clear();
                http.route.push_str(&http.path);
            }
            Unmatched::Unset => http.route.clear(),
            Unmatched::LowCardinality => {
                cluster_path_into(&http.path, self.wildcard, &mut http.route);
                if let Some(l) = &mut self.limiter {
                    l.limit(&span.service.namespace, &span.service.name, &mut http.route);
                }
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Service;
    use crate::span::fixtures::{self, Shape};
    use std::sync::Arc;

    fn span(t: Shape, path: &str) -> Span {
        let mut s = fixtures::span(t, Arc::new(Service { name: "svc".into(), ..Service::default() }), path, 200, 1);
        if let SpanDetail::Http(h) = &mut s.detail {
            h.route.clear();
        }
        s
    }

    fn route(s: &Span) -> &str {
        s.semantics().summary().route
    }

    fn route_of(d: &mut RouteDecorator, path: &str) -> (String, Verdict) {
        let mut s = span(Shape::HttpServer, path);
        let v = d.decorate(&mut s);
        (route(&s).to_string(), v)
    }

    #[test]
    fn default_is_heuristic() {
        let mut d = RouteDecorator::new(&RoutesConfig::default());
        assert_eq!(route_of(&mut d, "/users/123/profile").0, "/users/*/profile");
        assert_eq!(route_of(&mut d, "/").0, "/");
    }

    #[test]
    fn patterns_then_unmatched_modes() {
        let base = RoutesConfig { patterns: vec!["/basic/:rnd".into()], ..RoutesConfig::default() };
        for (mode, want) in [
            (Unmatched::Heuristic, "/other/*"),
            (Unmatched::Wildcard, "/**"),
            (Unmatched::Path, "/other/42"),
            (Unmatched::Unset, ""),
            (Unmatched::LowCardinality, "/other/*"),
        ] {
            let mut d = RouteDecorator::new(&RoutesConfig { unmatched: mode, ..base.clone() });
            assert_eq!(route_of(&mut d, "/basic/7").0, "/basic/:rnd", "{mode:?}");
            assert_eq!(route_of(&mut d, "/other/42").0, want, "{mode:?}");
        }
    }

    #[test]
    fn low_cardinality_caps_letter_segments_the_heuristic_keeps() {
        let cfg = RoutesConfig {
            unmatched: Unmatched::LowCardinality,
            max_path_segment_cardinality: 3,
            ..RoutesConfig::default()
        };
        let mut d = RouteDecorator::new(&cfg);
        let words = ["shoes", "hats", "socks", "gloves", "scarves", "boots"];
        let routes: std::collections::HashSet<String> =
            words.iter().map(|w| route_of(&mut d, &format!("/products/{w}")).0).collect();
        assert!(routes.contains("/products/*"), "{routes:?}");
        assert!(routes.len() <= 4, "{routes:?}");
    }

    #[test]
    fn ignored_patterns_by_mode() {
        for (mode, want) in [
            (IgnoreMode::All, Verdict::Drop),
            (IgnoreMode::Traces, Verdict::MetricsOnly),
            (IgnoreMode::Metrics, Verdict::TracesOnly),
        ] {
            let cfg = RoutesConfig {
                ignored_patterns: vec!["/health".into(), "/metrics/*".into()],
                ignore_mode: mode,
                ..RoutesConfig::default()
            };
            let mut d = RouteDecorator::new(&cfg);
            assert_eq!(route_of(&mut d, "/health").1, want);
            assert_eq!(route_of(&mut d, "/metrics").1, want);
            assert_eq!(route_of(&mut d, "/metrics/x").1, want);
            assert_eq!(route_of(&mut d, "/api").1, Verdict::Keep);
        }
        assert!(Verdict::MetricsOnly.to_metrics() && !Verdict::MetricsOnly.to_traces());
        assert!(!Verdict::TracesOnly.to_metrics() && Verdict::TracesOnly.to_traces());
        assert!(!Verdict::Drop.to_metrics() && !Verdict::Drop.to_traces());
    }

    #[test]
    fn only_http_spans_get_routes() {
        let mut d = RouteDecorator::new(&RoutesConfig::default());
        let mut s = span(Shape::GrpcServer, "/pkg.Svc/Method");
        assert_eq!(d.decorate(&mut s), Verdict::Keep);
        assert_eq!(route(&s), "");
        let mut c = span(Shape::HttpClient, "/api/v1/items/99");
        d.decorate(&mut c);
        assert_eq!(route(&c), "/api/v1/items/*");
    }
}
