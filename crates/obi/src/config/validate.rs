//! Cross-field checks, run once all layers are applied.

use super::{Config, ConfigError, MAX_CAPTURE_SIZE};

/// Smallest ring buffer the kernel accepts (one page on x86-64/arm64 with 4K pages).
pub(crate) const MIN_RING_BUFFER_SIZE: u32 = 4096;

/// Checks a fully built configuration.
///
/// Differences from OBI: OBI requires an exporter whenever applications are
/// selected; so do we, but the trace printer counts (as in OBI), and the
/// environment variables that enable exporters are named in the message.
/// Value ranges that OBI does not check (capture size, ring buffer size,
/// batch timeout) are checked here because the eBPF side depends on them.
pub(crate) fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let app_selected = cfg.shortcut_selector().is_some() || !cfg.discovery.instrument.is_empty();
    if !app_selected && !cfg.discovery.system_wide {
        return Err(ConfigError::Invalid(
            "missing to enable application discovery: no process is selected for instrumentation. Set \
             OTEL_EBPF_OPEN_PORT (e.g. 8080 or 8000-8999), OTEL_EBPF_AUTO_TARGET_EXE (e.g. '*/java'), \
             OTEL_EBPF_TARGET_PID or OTEL_EBPF_SYSTEM_WIDE=true, or define discovery.instrument in the YAML \
             configuration file (OTEL_EBPF_CONFIG_PATH or --config)"
                .to_string(),
        ));
    }
    if cfg.discovery.system_wide && app_selected {
        return Err(ConfigError::Invalid(
            "you can't use OTEL_EBPF_SYSTEM_WIDE if any of OTEL_EBPF_EXECUTABLE_PATH, OTEL_EBPF_OPEN_PORT, \
             OTEL_EBPF_AUTO_TARGET_EXE, OTEL_EBPF_TARGET_PID or discovery.instrument/services (YAML) are set"
                .to_string(),
        ));
    }
    if !cfg.trace_printer.is_enabled() && !cfg.export.any_enabled() {
        return Err(ConfigError::Invalid(
            "you need to define at least one exporter: trace_printer, otel_metrics_export, otel_traces_export or \
             prometheus_export (environment: OTEL_EBPF_TRACE_PRINTER=text, OTEL_EXPORTER_OTLP_ENDPOINT, \
             OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EBPF_PROMETHEUS_PORT)"
                .to_string(),
        ));
    }
    let size = cfg.ebpf.capture_size;
    if !(1..=MAX_CAPTURE_SIZE).contains(&size) {
        return Err(ConfigError::Invalid(format!(
            "invalid ebpf.buffer_sizes.http (OTEL_EBPF_BPF_BUFFER_SIZE_HTTP): {size} (obi-rs captures 1 to \
             {MAX_CAPTURE_SIZE} bytes per read/write)"
        )));
    }
    let rb = cfg.ebpf.ring_buffer_size;
    if rb < MIN_RING_BUFFER_SIZE || !rb.is_power_of_two() {
        return Err(ConfigError::Invalid(format!(
            "invalid ebpf.ring_buffer_size (OTEL_EBPF_BPF_RING_BUFFER_SIZE): {rb} (must be a power of two of at \
             least {MIN_RING_BUFFER_SIZE} bytes, e.g. 8MiB = 8388608)"
        )));
    }
    if cfg.ebpf.batch_timeout.is_zero() {
        return Err(ConfigError::Invalid(
            "invalid ebpf.batch_timeout (OTEL_EBPF_BPF_BATCH_TIMEOUT): 0s (must be greater than zero, e.g. 100ms)"
                .to_string(),
        ));
    }
    if cfg.ebpf.context_propagation == super::ContextPropagation::Tcp {
        // `all` and `headers,tcp` still inject headers (with a warning at
        // start-up); `tcp` alone would silently propagate nothing.
        return Err(ConfigError::Invalid(
            "ebpf.context_propagation (OTEL_EBPF_BPF_CONTEXT_PROPAGATION) is tcp, but obi-rs does not implement \
             context propagation through TCP options, so nothing would be propagated; use headers (traceparent \
             injected into outgoing HTTP/1 requests) or disabled"
                .to_string(),
        ));
    }
    let m = &cfg.metrics;
    if m.internal_exporter == super::metrics::InternalExporter::Prometheus {
        match (m.internal_port.or(cfg.export.prometheus_port), cfg.export.prometheus_port) {
            (None, _) => {
                return Err(ConfigError::Invalid(
                    "internal_metrics.exporter (OTEL_EBPF_INTERNAL_METRICS_EXPORTER) is prometheus but no port is \
                     set: set internal_metrics.prometheus.port (OTEL_EBPF_INTERNAL_METRICS_PROMETHEUS_PORT) or \
                     prometheus_export.port (OTEL_EBPF_PROMETHEUS_PORT)"
                        .to_string(),
                ));
            }
            (Some(a), Some(b)) if a == b && m.internal_path == m.prometheus_path => {
                return Err(ConfigError::Invalid(format!(
                    "internal_metrics.prometheus.path (OTEL_EBPF_INTERNAL_METRICS_PROMETHEUS_PATH) and \
                     prometheus_export.path (OTEL_EBPF_PROMETHEUS_PATH) are both {:?} on port {a}; use different paths",
                    m.prometheus_path
                )));
            }
            _ => {}
        }
    }
    if m.internal_exporter == super::metrics::InternalExporter::Otel {
        return Err(ConfigError::Invalid(
            "internal_metrics.exporter (OTEL_EBPF_INTERNAL_METRICS_EXPORTER): otel is not supported by obi-rs yet; \
             use prometheus or disabled"
                .to_string(),
        ));
    }
    Ok(())
}
