//! The event envelope: CloudEvents 1.0 in its JSON format, with the W3C trace context carried
//! as the `traceparent` extension attribute (CloudEvents' distributed-tracing extension).
//!
//! Every event a Gureum service publishes is one of these. Its `type` is also the bus subject
//! (`<service>.<aggregate>.<what happened>`, e.g. `ledger.transfer.committed`), its `subject`
//! names the aggregate the event is about (`transfer/1234`), and its `id` is what consumers
//! deduplicate by. Building one is pure: the caller passes the id, the time and the trace
//! context in.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The only CloudEvents version Gureum writes and accepts.
pub const SPEC_VERSION: &str = "1.0";

/// The content type of every event's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The longest event type (and so bus subject) accepted, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 200;

/// A CloudEvents 1.0 event, JSON format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique per event; consumers deduplicate by it. Gureum uses UUIDv7 (time-ordered).
    pub id: String,
    /// The producing service, as a URI reference: `/gureum/<service>`.
    pub source: String,
    /// What happened: `<service>.<aggregate>.<verb in the past tense>`. Also the bus subject.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The aggregate the event is about, e.g. `customer/0190f1c2-…`. Events with the same
    /// subject are published in the order they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the change was recorded, RFC 3339 in UTC.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The event's payload.
    pub data: serde_json::Value,
    /// W3C trace context of the request that caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Why bytes are not a Gureum event.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, or not the CloudEvents JSON shape.
    #[error("not a CloudEvents 1.0 JSON event: {0}")]
    Malformed(String),
    /// A field holds a value the envelope does not allow.
    #[error("invalid event field `{field}`: {reason}")]
    Invalid {
        /// The envelope field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl CloudEvent {
    /// Builds an event. `time_us` is microseconds since the Unix epoch.
    pub fn new(
        id: impl Into<String>,
        service: &str,
        event_type: impl Into<String>,
        subject: Option<String>,
        time_us: i64,
        data: serde_json::Value,
        traceparent: Option<TraceParent>,
    ) -> Result<CloudEvent, EventError> {
        let event = CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: id.into(),
            source: format!("/gureum/{service}"),
            event_type: event_type.into(),
            subject,
            time: format_time_us(time_us)?,
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            data,
            traceparent: traceparent.map(|t| t.to_string()),
        };
        event.validate()?;
        Ok(event)
    }

    /// Parses and validates an event from its JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<CloudEvent, EventError> {
        let event: CloudEvent =
            serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
        event.validate()?;
        Ok(event)
    }

    /// The JSON form (what travels on the bus and sits in the outbox).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a CloudEvent always serializes")
    }

    /// The trace context, if the event carries a valid one.
    pub fn trace_parent(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(|t| t.parse().ok())
    }

    /// Checks every rule of the envelope.
    pub fn validate(&self) -> Result<(), EventError> {
        let invalid = |field, reason| Err(EventError::Invalid { field, reason });
        if self.specversion != SPEC_VERSION {
            return invalid("specversion", "must be 1.0");
        }
        check_names(
            &self.id,
            &self.source,
            &self.event_type,
            self.subject.as_deref(),
        )?;
        if OffsetDateTime::parse(&self.time, &Rfc3339).is_err() {
            return invalid("time", "must be an RFC 3339 timestamp");
        }
        if self.datacontenttype != DATA_CONTENT_TYPE {
            return invalid("datacontenttype", "must be application/json");
        }
        if let Some(t) = &self.traceparent
            && t.parse::<TraceParent>().is_err()
        {
            return invalid("traceparent", "must be a W3C traceparent (version 00)");
        }
        Ok(())
    }
}

/// The rules on the envelope's names: id, source, type and subject.
fn check_names(
    id: &str,
    source: &str,
    event_type: &str,
    subject: Option<&str>,
) -> Result<(), EventError> {
    let invalid = |field, reason| Err(EventError::Invalid { field, reason });
    if id.is_empty() || id.len() > 128 {
        return invalid("id", "must be 1 to 128 bytes");
    }
    if source.is_empty() {
        return invalid("source", "must not be empty");
    }
    if !is_valid_event_type(event_type) {
        return invalid(
            "type",
            "must be dot-separated lower-case tokens [a-z0-9_-], at least two, at most 200 bytes",
        );
    }
    if subject.is_some_and(str::is_empty) {
        return invalid("subject", "must not be empty when present");
    }
    Ok(())
}

/// An event already in its JSON form, for producers that publish thousands at a time (the
/// ledger's relay): [`EncodedEvent::new`] serializes the payload straight into the envelope,
/// without building a [`CloudEvent`] and its `serde_json::Value` tree first. The JSON is the
/// same event [`CloudEvent::to_json`] would give (`data`'s keys in the payload's own order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The event's type: its bus subject.
    pub event_type: String,
    /// The event's id: what the bus deduplicates by.
    pub id: String,
    /// The whole event, CloudEvents JSON.
    pub json: String,
}

/// The envelope, borrowed, for [`EncodedEvent::new`]; its fields are [`CloudEvent`]'s, in order.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    time: &'a str,
    datacontenttype: &'static str,
    data: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

impl EncodedEvent {
    /// The JSON form of the event [`CloudEvent::new`] would build from the same arguments,
    /// checked by the same rules.
    pub fn new<T: Serialize>(
        id: impl Into<String>,
        service: &str,
        event_type: impl Into<String>,
        subject: Option<&str>,
        time_us: i64,
        data: &T,
        traceparent: Option<TraceParent>,
    ) -> Result<EncodedEvent, EventError> {
        let (id, event_type) = (id.into(), event_type.into());
        let source = format!("/gureum/{service}");
        check_names(&id, &source, &event_type, subject)?;
        let time = format_time_us(time_us)?;
        let json = serde_json::to_string(&Envelope {
            specversion: SPEC_VERSION,
            id: &id,
            source: &source,
            event_type: &event_type,
            subject,
            time: &time,
            datacontenttype: DATA_CONTENT_TYPE,
            data,
            traceparent: traceparent.map(|t| t.to_string()),
        })
        .map_err(|e| EventError::Malformed(e.to_string()))?;
        Ok(EncodedEvent {
            event_type,
            id,
            json,
        })
    }
}

impl From<&CloudEvent> for EncodedEvent {
    fn from(event: &CloudEvent) -> EncodedEvent {
        EncodedEvent {
            event_type: event.event_type.clone(),
            id: event.id.clone(),
            json: event.to_json(),
        }
    }
}

/// Whether `event_type` is usable as a bus subject: lower-case tokens separated by dots, no
/// wildcards, no empty token, at least `<service>.<name>`.
pub fn is_valid_event_type(event_type: &str) -> bool {
    event_type.len() <= EVENT_TYPE_BYTES_MAX
        && event_type.split('.').count() >= 2
        && event_type.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// Formats microseconds since the epoch as RFC 3339 UTC with microsecond precision.
pub fn format_time_us(time_us: i64) -> Result<String, EventError> {
    let invalid = EventError::Invalid {
        field: "time",
        reason: "out of range",
    };
    let nanos = i128::from(time_us) * 1_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid.clone())?;
    let at = at
        .replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .map_err(|_| invalid.clone())?;
    at.format(&Rfc3339).map_err(|_| invalid)
}

/// A W3C Trace Context `traceparent` (version 00): `00-<trace id>-<parent span id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, not all zero: the span that caused what carries this context.
    pub span_id: [u8; 8],
    /// Bit 0 is `sampled`.
    pub flags: u8,
}

/// Why a string is not a `traceparent`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a W3C traceparent")]
pub struct TraceParentError;

impl TraceParent {
    /// A context for a span that is a child of this one (same trace, new span id).
    pub fn child(&self, span_id: [u8; 8]) -> TraceParent {
        TraceParent { span_id, ..*self }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for b in self.trace_id {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in self.span_id {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<TraceParent, TraceParentError> {
        let parts: Vec<&str> = s.split('-').collect();
        let [version, trace_id, span_id, flags] = parts[..] else {
            return Err(TraceParentError);
        };
        if version != "00" {
            return Err(TraceParentError);
        }
        let trace_id: [u8; 16] = hex_bytes(trace_id)?;
        let span_id: [u8; 8] = hex_bytes(span_id)?;
        let [flags] = hex_bytes::<1>(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(TraceParentError);
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }
}

/// Lower-case hex only, as the W3C format requires.
fn hex_bytes<const N: usize>(s: &str) -> Result<[u8; N], TraceParentError> {
    if s.len() != N * 2 {
        return Err(TraceParentError);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceParentError),
    };
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn event() -> CloudEvent {
        CloudEvent::new(
            "0190f1c2-0000-7000-8000-000000000001",
            "customers",
            "customers.customer.created",
            Some("customer/42".into()),
            1_700_000_000_123_456,
            serde_json::json!({"customer_id": "42"}),
            Some(TRACE.parse().unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn an_encoded_event_is_the_json_of_the_same_cloud_event() {
        #[derive(Serialize)]
        struct Data {
            customer_id: &'static str,
        }
        let encoded = EncodedEvent::new(
            "0190f1c2-0000-7000-8000-000000000001",
            "customers",
            "customers.customer.created",
            Some("customer/42"),
            1_700_000_000_123_456,
            &Data { customer_id: "42" },
            Some(TRACE.parse().unwrap()),
        )
        .unwrap();
        assert_eq!(encoded.json, event().to_json());
        assert_eq!(encoded, EncodedEvent::from(&event()));
        assert_eq!(
            CloudEvent::from_json(encoded.json.as_bytes()).unwrap(),
            event()
        );
    }

    #[test]
    fn an_encoded_event_is_checked_by_the_envelope_rules() {
        let data = serde_json::json!({});
        let build = |id: &str, event_type: &str, subject: Option<&str>, time_us: i64| {
            EncodedEvent::new(id, "ledger", event_type, subject, time_us, &data, None)
        };
        assert!(build("t-1", "ledger.transfer.committed", Some("transfer/1"), 0).is_ok());
        let field = |r: Result<EncodedEvent, EventError>| match r {
            Err(EventError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        assert_eq!(field(build("", "ledger.transfer.committed", None, 0)), "id");
        assert_eq!(field(build("t-1", "Ledger.Transfer", None, 0)), "type");
        assert_eq!(
            field(build("t-1", "ledger.transfer.committed", Some(""), 0)),
            "subject"
        );
        assert_eq!(
            field(build("t-1", "ledger.transfer.committed", None, i64::MAX)),
            "time"
        );
    }

    #[test]
    fn event_round_trips_through_json_with_every_attribute() {
        let e = event();
        let json = e.to_json();
        assert_eq!(
            json,
            concat!(
                r#"{"specversion":"1.0","id":"0190f1c2-0000-7000-8000-000000000001","#,
                r#""source":"/gureum/customers","type":"customers.customer.created","#,
                r#""subject":"customer/42","time":"2023-11-14T22:13:20.123456Z","#,
                r#""datacontenttype":"application/json","data":{"customer_id":"42"},"#,
                r#""traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#
            )
        );
        assert_eq!(CloudEvent::from_json(json.as_bytes()).unwrap(), e);
        assert_eq!(e.trace_parent().unwrap().to_string(), TRACE);
    }

    #[test]
    fn envelope_rules_are_enforced_on_parse() {
        let mut bad_version = event();
        bad_version.specversion = "0.3".into();
        let mut wildcard_type = event();
        wildcard_type.event_type = "customers.*".into();
        let mut one_token = event();
        one_token.event_type = "customers".into();
        let mut bad_time = event();
        bad_time.time = "yesterday".into();
        let mut bad_trace = event();
        bad_trace.traceparent = Some("00-0000-00".into());
        for (e, field) in [
            (bad_version, "specversion"),
            (wildcard_type, "type"),
            (one_token, "type"),
            (bad_time, "time"),
            (bad_trace, "traceparent"),
        ] {
            let json = serde_json::to_string(&e).unwrap();
            match CloudEvent::from_json(json.as_bytes()) {
                Err(EventError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(
            CloudEvent::from_json(br#"{"specversion":"1.0"}"#),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn traceparent_parses_only_the_w3c_form() {
        let t: TraceParent = TRACE.parse().unwrap();
        assert_eq!(t.flags, 1);
        assert_eq!(
            t.child([7; 8]).to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0707070707070707-01"
        );
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert_eq!(bad.parse::<TraceParent>(), Err(TraceParentError), "{bad}");
        }
    }
}
