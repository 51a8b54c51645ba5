//! The OTLP exporter settings as written, gathered while the layers are
//! applied and read once by the resolution ([`super::resolve`]): the
//! `OTEL_EXPORTER_OTLP_*` (and related) environment variables by canonical
//! name, and the `otel_traces_export` / `otel_metrics_export` YAML sections.
//! Nothing here outlives [`crate::config::load`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::signal::Signal;

/// A raw setting and where it came from (an environment variable name or a
/// YAML path), so that errors can name it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Setting {
    pub(crate) source: String,
    pub(crate) value: String,
}

impl Setting {
    pub(crate) fn new(source: impl Into<String>, value: impl Into<String>) -> Self {
        Setting { source: source.into(), value: value.into() }
    }
}

/// Exporter settings collected by the environment and YAML layers.
#[derive(Debug, Default)]
pub(crate) struct OtlpSources {
    /// Environment values by canonical variable name, with the variable
    /// each came from (a `BEYLA_*` alias, a fallback name...).
    pub(crate) env: BTreeMap<&'static str, Setting>,
    pub(crate) traces_section: Option<Value>,
    pub(crate) metrics_section: Option<Value>,
}

impl OtlpSources {
    pub(crate) fn keep_env(&mut self, canonical: &'static str, value: &str, source: &str) {
        self.env.insert(canonical, Setting::new(source, value));
    }

    /// Keeps `tree` if `key` is one of the exporter sections.
    pub(crate) fn keep_section(&mut self, key: &str, tree: Value) {
        match key {
            "otel_traces_export" => self.traces_section = Some(tree),
            "otel_metrics_export" => self.metrics_section = Some(tree),
            _ => {}
        }
    }

    pub(crate) fn lookup(&self, signal: Signal) -> Lookup<'_> {
        let section = match signal {
            Signal::Traces => self.traces_section.as_ref(),
            Signal::Metrics => self.metrics_section.as_ref(),
        };
        Lookup::from_parts(&self.env, section, signal.yaml_section())
    }
}

/// Raw exporter settings of one signal: environment variables (by canonical
/// name) first, then the signal's YAML section.
pub(crate) struct Lookup<'a> {
    env: &'a BTreeMap<&'static str, Setting>,
    section: Option<&'a Value>,
    section_name: &'static str,
}

impl<'a> Lookup<'a> {
    pub(crate) fn from_parts(
        env: &'a BTreeMap<&'static str, Setting>,
        section: Option<&'a Value>,
        section_name: &'static str,
    ) -> Self {
        Lookup { env, section, section_name }
    }

    pub(crate) fn env(&self, name: &str) -> Option<Setting> {
        self.env.get(name).cloned()
    }

    /// A YAML value by dotted path inside the section; scalars become text,
    /// lists of scalars comma-separated text.
    pub(crate) fn yaml(&self, path: &str) -> Option<Setting> {
        let mut v = self.section?;
        for part in path.split('.') {
            v = v.get(part)?;
        }
        let text = match v {
            Value::Null => return None,
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        Some(Setting::new(format!("{}.{path}", self.section_name), text))
    }

    /// The environment variable, else the YAML key (`""`: none).
    pub(crate) fn get(&self, env: &str, yaml: &str) -> Option<Setting> {
        self.env(env).or_else(|| if yaml.is_empty() { None } else { self.yaml(yaml) })
    }
}
