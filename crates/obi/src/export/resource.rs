//! What every exporter says about where telemetry comes from: the host, the
//! OTLP resource of an instrumented process, the instrumentation scope, and
//! the attribute helpers the OTLP traces and metrics exporters share.
//!
//! Both OTLP signals use the same resource, as OBI does: `host.name` is always
//! present (even when empty), `host.id` only when known, and `process.pid`
//! names the process.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::service::Service;

/// `telemetry.sdk.name` of OBI (`VendorSDKName`), so dashboards filtering on it keep working.
pub(crate) const SDK_NAME: &str = "opentelemetry-ebpf-instrumentation";
/// The instrumentation scope OBI reports (its library name).
pub(crate) const SCOPE_NAME: &str = "github.com/open-telemetry/opentelemetry-ebpf-instrumentation";
/// `telemetry.sdk.version`: this build.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Facts about this host that go into every resource and `target_info`.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostInfo {
    pub(crate) host_name: String,
    /// `/etc/machine-id`, when readable.
    pub(crate) host_id: Option<String>,
}

impl HostInfo {
    /// Host name as configured; host id from `/etc/machine-id` when readable.
    pub(crate) fn detect(host_name: &str) -> Self {
        let host_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        HostInfo { host_name: host_name.to_string(), host_id }
    }
}

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

pub(crate) fn kv_str(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

pub(crate) fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

/// The resource of an instrumented process.
pub(crate) fn resource(service: &Service, host: &HostInfo) -> Resource {
    let mut a = Vec::with_capacity(10 + service.resource_attributes.len());
    a.push(kv_str("service.name", &service.name));
    if !service.namespace.is_empty() {
        a.push(kv_str("service.namespace", &service.namespace));
    }
    a.push(kv_str("service.instance.id", &service.instance_id));
    a.push(kv_str("telemetry.sdk.language", service.language.as_str()));
    a.push(kv_str("telemetry.sdk.name", SDK_NAME));
    a.push(kv_str("telemetry.sdk.version", SDK_VERSION));
    a.push(kv_str("host.name", &host.host_name));
    if let Some(id) = &host.host_id {
        a.push(kv_str("host.id", id));
    }
    a.push(kv_int("process.pid", service.pid as i64));
    // The process's own OTEL_RESOURCE_ATTRIBUTES, without overriding ours.
    for (k, v) in &service.resource_attributes {
        if !a.iter().any(|kv| &kv.key == k) {
            a.push(kv_str(k, v));
        }
    }
    Resource { attributes: a, dropped_attributes_count: 0, entity_refs: Vec::new() }
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_string(),
        version: SDK_VERSION.to_string(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &Resource) -> Vec<&str> {
        r.attributes.iter().map(|a| a.key.as_str()).collect()
    }

    #[test]
    fn empty_host_name_is_kept_and_unknown_host_id_left_out() {
        let svc = Service { name: "a".into(), pid: 7, instance_id: "h:7".into(), ..Default::default() };
        let r = resource(&svc, &HostInfo::default());
        assert_eq!(
            keys(&r),
            [
                "service.name",
                "service.instance.id",
                "telemetry.sdk.language",
                "telemetry.sdk.name",
                "telemetry.sdk.version",
                "host.name",
                "process.pid"
            ]
        );
    }
}
