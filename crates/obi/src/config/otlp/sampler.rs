//! Trace sampling settings (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
//! YAML `otel_traces_export.sampler.name/arg`). As in OBI, an unknown name or
//! an unparsable argument is a warning and the default,
//! `parentbased_always_on`, is used. The sampling decision itself is made by
//! the exporter (`export::otlp::sampler`).

use super::sources::Setting;
use crate::config::{Diagnostic, LogLevel};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// Ratio in [0, 1].
    TraceIdRatio(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sampler {
    pub(crate) root: RootSampler,
    /// Spans with a parent follow its sampled flag.
    pub(crate) parent_based: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler { root: RootSampler::AlwaysOn, parent_based: true }
    }
}

impl Sampler {
    /// Builds a sampler from its name and argument; problems are reported in
    /// `notes` and give the default sampler.
    pub(crate) fn from_settings(name: Option<&Setting>, arg: Option<&Setting>, notes: &mut Vec<Diagnostic>) -> Self {
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

    pub(crate) fn name(&self) -> String {
        let root = match self.root {
            RootSampler::AlwaysOn => "always_on".to_string(),
            RootSampler::AlwaysOff => "always_off".to_string(),
            RootSampler::TraceIdRatio(r) => format!("traceidratio({r})"),
        };
        if self.parent_based { format!("parentbased_{root}") } else { root }
    }
}

/// A sampler as `OTEL_TRACES_SAMPLER=name` (and `..._ARG=arg`) give it,
/// with the notes resolving it wrote (tests).
#[cfg(test)]
pub(crate) fn sampler_from_env(name: &str, arg: Option<&str>) -> (Sampler, Vec<Diagnostic>) {
    let mut notes = Vec::new();
    let name = Setting::new("OTEL_TRACES_SAMPLER", name);
    let arg = arg.map(|a| Setting::new("OTEL_TRACES_SAMPLER_ARG", a));
    (Sampler::from_settings(Some(&name), arg.as_ref(), &mut notes), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, arg: Option<&str>) -> (Sampler, Vec<Diagnostic>) {
        sampler_from_env(name, arg)
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
