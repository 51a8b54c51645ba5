//! Trace sampling before export, with the OpenTelemetry SDK's semantics:
//! `traceidratio` keeps a trace when the low 63 bits of its id's last 8 bytes
//! fall under the ratio, so every service keeps the same traces;
//! `parentbased_*` follow the parent's sampled flag when there is a parent.
//! The settings are resolved at load ([`crate::config::otlp::Sampler`]).

use crate::config::otlp::{RootSampler, Sampler};
use crate::span::TraceContext;

// The settings type lives in config; the decision, which reads spans, lives here.
impl Sampler {
    pub(crate) fn should_sample(&self, trace: &TraceContext) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Diagnostic;
    use crate::config::otlp::sampler::sampler_from_env;

    fn s(name: &str, arg: Option<&str>) -> (Sampler, Vec<Diagnostic>) {
        sampler_from_env(name, arg)
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
}
