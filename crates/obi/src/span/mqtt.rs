//! MQTT spans: one per CONNECT, PUBLISH, SUBSCRIBE and UNSUBSCRIBE (with
//! its ack when there is one), named and attributed after the OpenTelemetry
//! messaging conventions, and the messaging RED histograms OBI exposes.

use std::borrow::Cow;

use super::metric::{Attr, FamilyDef, Measure, SERVER_ADDRESS, SERVER_PORT};
use super::naming::{peer_name, server_address, server_name, write_server_port};
use super::{AttrSink, Semantics, Span, SpanDetail, SpanKind, Summary, Value};

/// The packet that opened an MQTT span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MqttOperation {
    Connect,
    /// A PUBLISH sent by the client (the publisher's `send`, the broker's `receive`).
    PublishFromClient,
    /// A PUBLISH sent by the broker (the broker's `send`, the subscriber's `process`).
    PublishFromBroker,
    Subscribe,
    Unsubscribe,
}

/// What an MQTT exchange adds to a span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MqttSpan {
    pub(crate) operation: MqttOperation,
    /// Seen from the broker's process (its accepted connection), not a client's.
    pub(crate) broker: bool,
    /// Topic of a PUBLISH; first topic filter of a (UN)SUBSCRIBE; empty for CONNECT.
    pub(crate) topic: String,
    /// Topic filters in a (UN)SUBSCRIBE.
    pub(crate) filters: u16,
    /// From the connection's CONNECT (or the id the broker assigned).
    pub(crate) client_id: String,
    /// `3.1`, `3.1.1` or `5.0`.
    pub(crate) version: &'static str,
    /// PUBLISH: its QoS; SUBSCRIBE: the highest QoS asked for.
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) dup: bool,
    /// PUBLISH: bytes of application payload.
    pub(crate) payload_size: u32,
    /// The ack's return or reason code (CONNACK, PUBACK, PUBREC/PUBCOMP,
    /// first failing SUBACK code); `None` when no ack exists (QoS 0).
    pub(crate) reason: Option<u8>,
}

static NOT_MQTT: MqttSpan = MqttSpan {
    operation: MqttOperation::Connect,
    broker: false,
    topic: String::new(),
    filters: 0,
    client_id: String::new(),
    version: "",
    qos: 0,
    retain: false,
    dup: false,
    payload_size: 0,
    reason: None,
};

impl MqttSpan {
    fn of(span: &Span) -> &MqttSpan {
        match &span.detail {
            SpanDetail::Mqtt(m) => m,
            _ => &NOT_MQTT,
        }
    }

    /// `messaging.operation.name`, which also names the span.
    pub(crate) fn operation_name(&self) -> &'static str {
        let broker = self.broker;
        match self.operation {
            MqttOperation::Connect => "connect",
            MqttOperation::PublishFromClient if broker => "receive",
            MqttOperation::PublishFromBroker if !broker => "process",
            MqttOperation::PublishFromClient | MqttOperation::PublishFromBroker => "publish",
            MqttOperation::Subscribe => "subscribe",
            MqttOperation::Unsubscribe => "unsubscribe",
        }
    }

    /// `messaging.operation.type`: what this process did with a message;
    /// `None` for operations that move no message.
    pub(crate) fn operation_type(&self) -> Option<&'static str> {
        let broker = self.broker;
        match self.operation {
            MqttOperation::PublishFromClient => Some(if broker { "receive" } else { "send" }),
            MqttOperation::PublishFromBroker => Some(if broker { "send" } else { "process" }),
            _ => None,
        }
    }

    /// A failing return code: any non-zero CONNACK code (3.1.x codes 1-5
    /// and 5.0 codes >= 0x80 alike), else a 5.0 reason code >= 0x80.
    fn failed(&self) -> bool {
        match (self.operation, self.reason) {
            (MqttOperation::Connect, Some(r)) => r != 0,
            (_, Some(r)) => r >= 0x80,
            (_, None) => false,
        }
    }
}

impl Semantics for MqttSpan {
    fn type_name(&self, kind: SpanKind) -> &'static str {
        if kind == SpanKind::Client { "MQTTClient" } else { "MQTTServer" }
    }

    fn instrumentation(&self) -> Option<&'static str> {
        Some("mqtt")
    }

    /// `{operation} {topic}`, or the operation alone for CONNECT.
    fn name(&self) -> Cow<'_, str> {
        let op = self.operation_name();
        if self.topic.is_empty() { Cow::Borrowed(op) } else { Cow::Owned(format!("{op} {}", self.topic)) }
    }

    fn is_error(&self, _kind: SpanKind) -> bool {
        self.failed()
    }

    fn summary(&self) -> Summary<'_> {
        Summary {
            sub_type: 0,
            status: self.reason.map_or(0, i64::from),
            method: self.operation_name(),
            target: &self.topic,
            route: "",
            request_size: self.payload_size.into(),
            response_size: 0,
        }
    }

    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        out("messaging.system", Value::Str("mqtt"));
        out("messaging.operation.name", Value::Str(self.operation_name()));
        if let Some(t) = self.operation_type() {
            out("messaging.operation.type", Value::Str(t));
        }
        if !self.topic.is_empty() {
            out("messaging.destination.name", Value::Str(&self.topic));
        }
        if !self.client_id.is_empty() {
            out("messaging.client.id", Value::Str(&self.client_id));
        }
        if matches!(self.operation, MqttOperation::PublishFromClient | MqttOperation::PublishFromBroker) {
            out("messaging.message.body.size", Value::Int(self.payload_size.into()));
            out("messaging.mqtt.retain", Value::Int(self.retain.into()));
        }
        if self.operation != MqttOperation::Connect {
            out("messaging.mqtt.qos", Value::Int(self.qos.into()));
        }
        if let Some(r) = self.reason {
            out("messaging.mqtt.reason_code", Value::Int(r.into()));
        }
        if self.failed() {
            out("error.type", Value::Str("mqtt_reason_code"));
        }
        out("network.protocol.name", Value::Str("mqtt"));
        out("network.protocol.version", Value::Str(self.version));
        if !span.is_client() {
            out("client.address", peer_name(span));
        }
        out("server.address", server_address(span));
        write_server_port(span, out);
    }

    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        out("clientId", Value::Str(&self.client_id));
        out("operation", Value::Str(self.operation_name()));
        out("payloadSize", Value::Int(self.payload_size.into()));
        out("qos", Value::Int(self.qos.into()));
        out("reasonCode", self.reason.map_or(Value::Str(""), |r| Value::Int(r.into())));
        out("retain", Value::Int(self.retain.into()));
        out("serverAddr", server_name(span));
        out("serverPort", Value::Int(span.host.port.into()));
        out("topic", Value::Str(&self.topic));
    }
}

const SYSTEM: Attr = Attr::new("messaging.system", "messaging_system", |_| Value::Str("mqtt"));
const DESTINATION: Attr =
    Attr::new("messaging.destination.name", "messaging_destination_name", |s| Value::Str(&MqttSpan::of(s).topic));
const OPERATION: Attr =
    Attr::new("messaging.operation.name", "messaging_operation_name", |s| Value::Str(MqttSpan::of(s).operation_name()));

const ATTRS: &[Attr] = &[SYSTEM, DESTINATION, OPERATION, SERVER_ADDRESS, SERVER_PORT];
const DEFAULTS: &[Attr] = &[SYSTEM, DESTINATION];

/// A publisher's PUBLISH to the broker.
fn is_client_send(span: &Span) -> bool {
    matches!(&span.detail, SpanDetail::Mqtt(m) if !m.broker && m.operation == MqttOperation::PublishFromClient)
}

/// A subscriber's processing of a PUBLISH the broker delivered.
fn is_client_process(span: &Span) -> bool {
    matches!(&span.detail, SpanDetail::Mqtt(m) if !m.broker && m.operation == MqttOperation::PublishFromBroker)
}

/// OBI's messaging histograms, recorded from the clients' side: a
/// publisher's `send` (until its ack for QoS 1 and 2) and a subscriber's
/// `process` (from delivery to its ack).
pub(super) static FAMILIES: &[FamilyDef] = &[
    FamilyDef {
        otel: "messaging.publish.duration",
        prom: "messaging_publish_duration_seconds",
        unit: "s",
        help: "duration of messaging publish operations, in seconds",
        measure: Measure::Duration,
        instrumentation: "mqtt",
        kind: SpanKind::Client,
        records: is_client_send,
        available: ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "messaging.process.duration",
        prom: "messaging_process_duration_seconds",
        unit: "s",
        help: "duration of messaging process operations, in seconds",
        measure: Measure::Duration,
        instrumentation: "mqtt",
        kind: SpanKind::Client,
        records: is_client_process,
        available: ATTRS,
        defaults: DEFAULTS,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(operation: MqttOperation, reason: Option<u8>) -> MqttSpan {
        MqttSpan {
            operation,
            broker: false,
            topic: "sensors/t1".into(),
            filters: 0,
            client_id: "s1".into(),
            version: "3.1.1",
            qos: 1,
            retain: false,
            dup: false,
            payload_size: 5,
            reason,
        }
    }

    #[test]
    fn names_operations_from_each_side() {
        let p = publish(MqttOperation::PublishFromClient, Some(0));
        assert_eq!(p.name(), "publish sensors/t1");
        assert_eq!(p.operation_type(), Some("send"));
        let at_broker = MqttSpan { broker: true, ..p.clone() };
        assert_eq!(at_broker.name(), "receive sensors/t1");
        assert_eq!(at_broker.operation_type(), Some("receive"));
        let d = publish(MqttOperation::PublishFromBroker, None);
        assert_eq!(d.name(), "process sensors/t1");
        assert_eq!(d.operation_type(), Some("process"));
        let delivered = MqttSpan { broker: true, ..d };
        assert_eq!(delivered.name(), "publish sensors/t1");
        assert_eq!(delivered.operation_type(), Some("send"));
        let c = MqttSpan { operation: MqttOperation::Connect, topic: String::new(), ..p.clone() };
        assert_eq!(c.name(), "connect");
        assert_eq!(c.operation_type(), None);
    }

    #[test]
    fn reason_codes_decide_errors() {
        let ok = publish(MqttOperation::PublishFromClient, Some(0x10));
        assert!(!ok.is_error(SpanKind::Client));
        assert!(publish(MqttOperation::PublishFromClient, Some(0x87)).is_error(SpanKind::Client));
        let refused = MqttSpan { operation: MqttOperation::Connect, ..publish(MqttOperation::Connect, Some(5)) };
        assert!(refused.is_error(SpanKind::Server));
        assert!(!publish(MqttOperation::PublishFromBroker, None).is_error(SpanKind::Client));
    }
}
