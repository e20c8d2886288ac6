//! `google.rpc.Status` with a `google.rpc.RetryInfo` detail: how a refusal tells an OTLP client
//! to retry, and after how long. gRPC carries the encoded `Status` in the
//! `grpc-status-details-bin` trailer; OTLP/HTTP sends it as the error body (protobuf, or its
//! JSON mapping). Hand-written prost messages: four small types are cheaper than a dependency.

use std::time::Duration;

use prost::Message;

/// `type_url` of a packed `google.rpc.RetryInfo`.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// How long a refused client is asked to wait (gRPC RetryInfo, HTTP `Retry-After`).
pub const REFUSED_RETRY_DELAY: Duration = Duration::from_secs(1);

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl RetryInfo {
    pub fn new(delay: Duration) -> Self {
        Self {
            retry_delay: Some(ProtoDuration {
                seconds: delay.as_secs() as i64,
                nanos: delay.subsec_nanos() as i32,
            }),
        }
    }

    pub fn delay(&self) -> Option<Duration> {
        let d = self.retry_delay.as_ref()?;
        (d.seconds >= 0 && d.nanos >= 0).then(|| Duration::new(d.seconds as u64, d.nanos as u32))
    }
}

impl RpcStatus {
    /// A status carrying one RetryInfo detail.
    pub fn retryable(code: i32, message: String, delay: Duration) -> Self {
        Self {
            code,
            message,
            details: vec![Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: RetryInfo::new(delay).encode_to_vec(),
            }],
        }
    }

    /// The RetryInfo detail, when there is one.
    pub fn retry_info(&self) -> Option<RetryInfo> {
        self.details
            .iter()
            .find(|a| a.type_url == RETRY_INFO_TYPE)
            .and_then(|a| RetryInfo::decode(a.value.as_slice()).ok())
    }

    /// The proto3 JSON mapping: `{"code": 14, "message": "...", "details": [{"@type": ...,
    /// "retryDelay": "1s"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let details: Vec<serde_json::Value> = self
            .details
            .iter()
            .map(|a| match RetryInfo::decode(a.value.as_slice()) {
                Ok(ri) if a.type_url == RETRY_INFO_TYPE => {
                    let d = ri.delay().unwrap_or_default();
                    let delay = if d.subsec_nanos() == 0 {
                        format!("{}s", d.as_secs())
                    } else {
                        format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
                    };
                    serde_json::json!({"@type": a.type_url, "retryDelay": delay})
                }
                _ => serde_json::json!({"@type": a.type_url}),
            })
            .collect();
        serde_json::json!({"code": self.code, "message": self.message, "details": details})
    }
}

/// A gRPC status that clients retry after `delay`: `code` plus a RetryInfo detail in
/// `grpc-status-details-bin`, and the bare RetryInfo in `google.rpc.retryinfo-bin` (the trailer
/// opentelemetry-python's exporter reads).
pub fn grpc_retryable(code: tonic::Code, message: String, delay: Duration) -> tonic::Status {
    let details = RpcStatus::retryable(code as i32, message.clone(), delay).encode_to_vec();
    let mut md = tonic::metadata::MetadataMap::new();
    md.insert_bin(
        "google.rpc.retryinfo-bin",
        tonic::metadata::MetadataValue::from_bytes(&RetryInfo::new(delay).encode_to_vec()),
    );
    tonic::Status::with_details_and_metadata(code, message, details.into(), md)
}

/// The server-requested delay in a gRPC status's RetryInfo detail.
pub fn grpc_retry_delay(s: &tonic::Status) -> Option<Duration> {
    if s.details().is_empty() {
        return None;
    }
    RpcStatus::decode(s.details()).ok()?.retry_info()?.delay()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_through_a_grpc_status() {
        let s = grpc_retryable(
            tonic::Code::ResourceExhausted,
            "full".into(),
            Duration::from_millis(1500),
        );
        assert_eq!(grpc_retry_delay(&s), Some(Duration::from_millis(1500)));
        let st = RpcStatus::decode(s.details()).unwrap();
        assert_eq!(st.code, tonic::Code::ResourceExhausted as i32);
        assert_eq!(st.details[0].type_url, RETRY_INFO_TYPE);
        assert_eq!(
            st.to_json()["details"][0]["retryDelay"],
            serde_json::json!("1.500000000s")
        );
        assert_eq!(grpc_retry_delay(&tonic::Status::unavailable("x")), None);
    }
}
