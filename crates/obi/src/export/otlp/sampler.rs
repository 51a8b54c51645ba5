//! Trace sampling before export (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
//! YAML `otel_traces_export.sampler.name/arg`), with the OpenTelemetry SDK's
//! semantics: `traceidratio` keeps a trace when the low 63 bits of its id's
//! last 8 bytes fall under the ratio, so every service keeps the same traces;
//! `parentbased_*` follow the parent's sampled flag when there is a parent.
//! As in OBI, an unknown name or an unparsable argument is a warning and
//! the default, `parentbased_always_on`, is used.

use crate::config::{Diagnostic, LogLevel, Setting};
use crate::span::TraceContext;

#[derive(Debug, Clone, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// Ratio in [0, 1].
    TraceIdRatio(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    pub root: RootSampler,
    /// Spans with a parent follow its sampled flag.
    pub parent_based: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler { root: RootSampler::AlwaysOn, parent_based: true }
    }
}

impl Sampler {
    /// Builds a sampler from its name and argument; problems are reported in
    /// `notes` and give the default sampler.
    pub fn from_settings(name: Option<&Setting>, arg: Option<&Setting>, notes: &mut Vec<Diagnostic>) -> Self {
        let Some(name) = name else { return Sampler::default() };
        let mut warn = |key: &str, message: String| {
            notes.push(Diagnostic {
                level: LogLevel::Warn,
                key: key.to_string(),
                message: format!("{message}; using parentbased_always_on"),
            });
        };
        let ratio = || -> Option<f64> {
            // The SDKs default to 1.0 without an argument.
            let Some(arg) = arg else { return Some(1.0) };
            arg.value.trim().parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r))
        };
        let (root, parent_based) = match name.value.trim() {
            "always_on" => (RootSampler::AlwaysOn, false),
            "always_off" => (RootSampler::AlwaysOff, false),
            "parentbased_always_on" => (RootSampler::AlwaysOn, true),
            "parentbased_always_off" => (RootSampler::AlwaysOff, true),
            n @ ("traceidratio" | "parentbased_traceidratio") => match ratio() {
                Some(r) => (RootSampler::TraceIdRatio(r), n.starts_with("parentbased")),
                None => {
                    let arg = arg.expect("ratio() is Some without an argument");
                    warn(
                        &arg.source,
                        format!("invalid sampler argument {:?} (expected a ratio from 0 to 1)", arg.value),
                    );
                    return Sampler::default();
                }
            },
            other => {
                warn(
                    &name.source,
                    format!(
                        "unknown sampler {other:?} (expected always_on, always_off, traceidratio, \
                         parentbased_always_on, parentbased_always_off or parentbased_traceidratio)"
                    ),
                );
                return Sampler::default();
            }
        };
        Sampler { root, parent_based }
    }

    pub fn should_sample(&self, trace: &TraceContext) -> bool {
        if self.parent_based && trace.has_parent() {
            return trace.sampled();
        }
        match self.root {
            RootSampler::AlwaysOn => true,
            RootSampler::AlwaysOff => false,
            RootSampler::TraceIdRatio(r) => {
                // Same threshold arithmetic as the Go SDK.
                let bound = (r * (1u64 << 63) as f64) as u64;
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace.trace_id[8..]);
                (u64::from_be_bytes(low) >> 1) < bound
            }
        }
    }

    pub fn name(&self) -> String {
        let root = match self.root {
            RootSampler::AlwaysOn => "always_on".to_string(),
            RootSampler::AlwaysOff => "always_off".to_string(),
            RootSampler::TraceIdRatio(r) => format!("traceidratio({r})"),
        };
        if self.parent_based { format!("parentbased_{root}") } else { root }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, arg: Option<&str>) -> (Sampler, Vec<Diagnostic>) {
        let mut notes = Vec::new();
        let name = Setting::new("OTEL_TRACES_SAMPLER", name);
        let arg = arg.map(|a| Setting::new("OTEL_TRACES_SAMPLER_ARG", a));
        (Sampler::from_settings(Some(&name), arg.as_ref(), &mut notes), notes)
    }

    fn ctx(low: u64, parent: bool, sampled: bool) -> TraceContext {
        let mut trace_id = [7u8; 16];
        trace_id[8..].copy_from_slice(&low.to_be_bytes());
        TraceContext {
            trace_id,
            span_id: [1; 8],
            parent_span_id: if parent { [2; 8] } else { [0; 8] },
            flags: sampled as u8,
        }
    }

    #[test]
    fn default_is_parentbased_always_on() {
        let d = Sampler::from_settings(None, None, &mut Vec::new());
        assert_eq!(d, Sampler { root: RootSampler::AlwaysOn, parent_based: true });
        assert!(d.should_sample(&ctx(0, false, false)));
        assert!(d.should_sample(&ctx(0, true, true)));
        assert!(!d.should_sample(&ctx(0, true, false)), "an unsampled parent is followed");
    }

    #[test]
    fn trace_id_ratio_uses_the_low_trace_id_bits() {
        let (r, notes) = s("traceidratio", Some("0.25"));
        assert!(notes.is_empty());
        let bound = 1u64 << 61; // 0.25 * 2^63
        assert!(r.should_sample(&ctx((bound - 1) << 1, false, false)));
        assert!(!r.should_sample(&ctx(bound << 1, false, false)));
        // Not parent based: the parent's flag does not matter.
        assert!(!r.should_sample(&ctx(u64::MAX, true, true)));
        let (pr, _) = s("parentbased_traceidratio", Some("0.25"));
        assert!(pr.should_sample(&ctx(u64::MAX, true, true)));
        assert!(!pr.should_sample(&ctx(u64::MAX, false, true)));
        // About a quarter of random ids.
        let kept = (0..10_000u64)
            .filter(|i| r.should_sample(&ctx(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), false, false)))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
    }

    #[test]
    fn fixed_samplers() {
        assert!(s("always_on", None).0.should_sample(&ctx(0, true, false)));
        assert!(!s("always_off", None).0.should_sample(&ctx(0, false, true)));
        let (off, _) = s("parentbased_always_off", None);
        assert!(!off.should_sample(&ctx(0, false, true)));
        assert!(off.should_sample(&ctx(0, true, true)));
    }

    #[test]
    fn bad_names_and_arguments_warn_and_use_the_default() {
        let (x, notes) = s("sometimes", None);
        assert_eq!(x, Sampler::default());
        assert_eq!(notes[0].key, "OTEL_TRACES_SAMPLER");
        assert!(notes[0].message.starts_with("unknown sampler \"sometimes\""), "{}", notes[0].message);
        for bad in ["half", "1.5", "-0.1"] {
            let (x, notes) = s("traceidratio", Some(bad));
            assert_eq!(x, Sampler::default());
            assert_eq!(notes[0].key, "OTEL_TRACES_SAMPLER_ARG");
            assert_eq!(notes[0].level, LogLevel::Warn);
        }
    }
}
