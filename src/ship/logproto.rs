//! The subset of Loki's `logproto` push schema (`pkg/push/push.proto`) that a client sends,
//! written by hand as prost messages (no `protoc`, no gogoproto options).
//!
//! Owns the field numbers and types only; what goes in them is `loki::push`'s business.
//! `line`, and the names and values of structured metadata, are `string` in the `.proto`;
//! they are declared `bytes` here, which has the same wire encoding, so that they can be
//! slices of one shared buffer instead of a `String` each. Everything put in them is UTF-8.

use prost::bytes::Bytes;

/// `message PushRequest { repeated StreamAdapter streams = 1; string format = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `message StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }`
/// (`hash` is left unset, as Loki's own clients do.)
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set as a LogQL selector: `{host="web-1", job="logward"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

/// `message EntryAdapter { google.protobuf.Timestamp timestamp = 1; string line = 2;
/// repeated LabelPairAdapter structuredMetadata = 3; repeated LabelPairAdapter parsed = 4; }`
/// (`parsed` is filled by Loki's read path only.)
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(bytes = "bytes", tag = "2")]
    pub line: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `message LabelPairAdapter { string name = 1; string value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }`
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// From nanoseconds since the epoch; `nanos` is never negative, as the type requires.
    pub fn from_nanos(nanos: i64) -> Timestamp {
        Timestamp {
            seconds: nanos.div_euclid(1_000_000_000),
            // The remainder is in [0, 1e9): it fits.
            nanos: nanos.rem_euclid(1_000_000_000) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn timestamps_before_the_epoch_keep_nanos_positive() {
        assert_eq!(
            Timestamp::from_nanos(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
        assert_eq!(
            Timestamp::from_nanos(1_700_000_000_123_456_789),
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789
            }
        );
    }

    #[test]
    fn bytes_fields_encode_as_the_strings_of_the_schema() {
        // A `string` field 2 holding "hi": key 0x12, length 2, the bytes.
        let e = EntryAdapter {
            timestamp: None,
            line: Bytes::from_static(b"hi"),
            structured_metadata: vec![],
        };
        assert_eq!(e.encode_to_vec(), [0x12, 2, b'h', b'i']);
    }
}
