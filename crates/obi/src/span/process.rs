//! The `ProcessAlive` pseudo-span the printers show when a process starts
//! being instrumented. It is never exported nor measured.

use std::borrow::Cow;

use super::metric::FamilyDef;
use super::{AttrSink, Semantics, Span, SpanKind, Summary};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcessAlive;

impl Semantics for ProcessAlive {
    fn type_name(&self, _: SpanKind) -> &'static str {
        "ProcessAlive"
    }

    fn instrumentation(&self) -> Option<&'static str> {
        None
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed("process")
    }

    fn is_error(&self, _: SpanKind) -> bool {
        false
    }

    fn summary(&self) -> Summary<'_> {
        Summary { sub_type: 0, status: 0, method: "", target: "", route: "", request_size: 0, response_size: 0 }
    }

    fn otel_attributes(&self, _: &Span, _: &mut AttrSink<'_>) {}

    fn printer_attributes(&self, _: &Span, _: &mut AttrSink<'_>) {}
}

pub(super) static FAMILIES: &[FamilyDef] = &[];
