//! The one place that turns values into bytes and back: bincode 2.0.1 (pinned in Cargo.toml;
//! 3.0.0 is an empty tombstone), always decoding with a size limit, so a hostile length prefix
//! inside a payload cannot make the decoder allocate more than that limit: [`MAX_MESSAGE`]
//! bytes for most values, more for a protocol request ([`MAX_REQUEST_CLAIM`]) and answer
//! ([`MAX_LARGE_CLAIM`]), whose bytes bincode counts up to 8 times over.
//!
//! Datagrams (gossip packets) use [`encode_datagram`] and [`decode_datagram`], whose limit is
//! the largest UDP payload.
//!
//! Framing (how long a payload is, what type it is) belongs to the callers — the wire
//! protocol, the WAL and gossip — which check lengths against their own, smaller bounds before
//! they call [`decode`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest value the codec will decode (16 MiB). bincode 2.0.1 applies a configured
/// limit only when decoding: encoders bound what they encode themselves.
pub const MAX_MESSAGE: usize = 16 << 20;

/// bincode's standard configuration with a size limit of `LIMIT` bytes.
type Limited<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

const CONFIG: Limited<MAX_MESSAGE> = bincode::config::standard().with_limit::<MAX_MESSAGE>();

/// The largest answer of the wire protocol on the wire, sent in pieces (64 MiB): the one
/// value the codec decodes with a larger limit than [`MAX_MESSAGE`] ([`decode_large`]).
/// Encoding is not limited by the codec: callers check the length they get.
pub const MAX_LARGE: usize = 64 << 20;

/// What an answer of up to [`MAX_LARGE`] bytes may claim once decoded (512 MiB): as for a
/// request ([`MAX_REQUEST_CLAIM`]), bincode counts each one-byte length prefix as 8 bytes,
/// so an answer that fits on the wire always decodes. An answer of 1,022 outputs of 64 KiB
/// (65.5 MB on the wire) claimed more than 64 MiB and was refused by the client that asked.
pub const MAX_LARGE_CLAIM: usize = 8 * MAX_LARGE;

const LARGE_CONFIG: Limited<MAX_LARGE_CLAIM> =
    bincode::config::standard().with_limit::<MAX_LARGE_CLAIM>();

/// [`decode`] of up to [`MAX_LARGE`] bytes with the limit [`MAX_LARGE_CLAIM`]: for a
/// protocol answer (whole or joined from its pieces) or stream item.
pub fn decode_large<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    if bytes.len() > MAX_LARGE {
        return Err(CodecError::TooLarge {
            what,
            limit: MAX_LARGE,
        });
    }
    whole(what, bytes, decode_prefix_with(what, bytes, LARGE_CONFIG)?)
}

/// A value that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded (too large, or not representable).
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why not.
        message: String,
    },
    /// The bytes are not a valid value.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why not.
        message: String,
    },
    /// The value claims more memory than the codec's limit for it (each text's bytes and
    /// each list's items count): well-formed, perhaps, but too large to take in one piece.
    #[error("cannot decode {what}: it needs more than {limit} bytes once decoded")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The value ended before the bytes did.
    #[error("cannot decode {what}: {extra} unexpected bytes after the value")]
    Trailing {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
}

/// Encodes `value` into a new buffer.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| CodecError::Encode {
        what,
        message: e.to_string(),
    })
}

/// Appends the encoding of `value` to `buffer`; returns how many bytes were added.
pub fn encode_into<T: Serialize>(
    what: &'static str,
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<usize, CodecError> {
    append_with(what, value, buffer, CONFIG)
}

/// Bincode's writer straight onto a `Vec`: its `std::io::Write` path counted every write
/// and carried an I/O error a `Vec` never returns. Most writes are one byte (a small
/// integer, a tag), pushed as such.
struct AppendWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for AppendWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        match bytes {
            [byte] => self.0.push(*byte),
            _ => self.0.extend_from_slice(bytes),
        }
        Ok(())
    }
}

/// Appends `value` encoded with `config`; on error `buffer` is left as it was.
fn append_with<T: Serialize, C: bincode::config::Config>(
    what: &'static str,
    value: &T,
    buffer: &mut Vec<u8>,
    config: C,
) -> Result<usize, CodecError> {
    let before = buffer.len();
    bincode::serde::encode_into_writer(value, AppendWriter(&mut *buffer), config)
        .map(|()| buffer.len() - before)
        .map_err(|e| {
            buffer.truncate(before);
            CodecError::Encode {
                what,
                message: e.to_string(),
            }
        })
}

/// Decodes exactly one value from `bytes`; leftover bytes are an error.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    whole(what, bytes, decode_prefix_with(what, bytes, CONFIG)?)
}

/// What a protocol request may claim once decoded (128 MiB): bincode counts every integer
/// at its size in memory (a text's length prefix of one byte claims 8) besides the text, so
/// a request claims up to 8 times its size on the wire. A request is framed in at most
/// `net.max_frame` (at most [`MAX_MESSAGE`]) bytes, so every one that was framed decodes.
pub const MAX_REQUEST_CLAIM: usize = 8 * MAX_MESSAGE;

const REQUEST_CONFIG: Limited<MAX_REQUEST_CLAIM> =
    bincode::config::standard().with_limit::<MAX_REQUEST_CLAIM>();

/// [`decode`] for a type that borrows from `bytes` (text as `&str`), so decoding copies
/// nothing it does not have to: a protocol request as the server reads it, or a response
/// read in place by a client, with the limit [`MAX_REQUEST_CLAIM`].
pub fn decode_borrowed<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::borrow_decode_from_slice::<T, _>(bytes, REQUEST_CONFIG)
        .map_err(|e| decode_error(what, e, MAX_REQUEST_CLAIM))?;
    whole(what, bytes, (value, used))
}

/// A decode failure as a [`CodecError`]: [`CodecError::TooLarge`] when the value claims more
/// than `limit` bytes.
fn decode_error(
    what: &'static str,
    error: bincode::error::DecodeError,
    limit: usize,
) -> CodecError {
    match error {
        bincode::error::DecodeError::LimitExceeded => CodecError::TooLarge { what, limit },
        other => CodecError::Decode {
            what,
            message: decode_failure_text(&other),
        },
    }
}

/// What is wrong with bytes that do not decode, in words (bincode's own text is its enum's
/// debug form: `InvalidIntegerType { expected: U32, found: Reserved }`).
fn decode_failure_text(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match error {
        E::UnexpectedEnd { additional } => {
            format!("the bytes end {additional} bytes short of a whole value")
        }
        E::InvalidIntegerType { .. } | E::OutsideUsizeRange(_) | E::NonZeroTypeIsZero { .. } => {
            "a number in it is not encoded as this protocol encodes numbers".to_string()
        }
        E::UnexpectedVariant {
            type_name, found, ..
        } => {
            let name = type_name.rsplit("::").next().unwrap_or(type_name);
            format!("variant {found} of {name} is not one this version knows")
        }
        E::Utf8 { .. } | E::InvalidCharEncoding(_) => "a text in it is not UTF-8".to_string(),
        E::InvalidBooleanValue(value) => format!("a true/false byte is {value}, not 0 or 1"),
        other => format!("malformed ({other})"),
    }
}

/// Decodes one value from the start of `bytes` with `config`; returns it and the bytes used.
fn decode_prefix_with<T: DeserializeOwned, C: bincode::config::Config>(
    what: &'static str,
    bytes: &[u8],
    config: C,
) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice::<T, _>(bytes, config)
        .map_err(|e| decode_error(what, e, config.limit().unwrap_or(usize::MAX)))
}

/// The decoded value, if it used all of `bytes`.
fn whole<T>(what: &'static str, bytes: &[u8], (value, used): (T, usize)) -> Result<T, CodecError> {
    if used != bytes.len() {
        return Err(CodecError::Trailing {
            what,
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// The largest datagram the codec will decode (the largest UDP payload over IPv4).
/// Gossip checks its own, smaller `gossip.max_packet` before decoding.
pub const MAX_DATAGRAM: usize = 65_507;

const DATAGRAM_CONFIG: Limited<MAX_DATAGRAM> =
    bincode::config::standard().with_limit::<MAX_DATAGRAM>();

/// Encodes a datagram-sized value into a new buffer. The limit is not applied here (see
/// [`MAX_MESSAGE`]): callers check the length against their own packet bound.
pub fn encode_datagram<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, DATAGRAM_CONFIG).map_err(|e| CodecError::Encode {
        what,
        message: e.to_string(),
    })
}

/// Decodes exactly one datagram-sized value; input longer than [`MAX_DATAGRAM`] or leftover
/// bytes are errors, and no length prefix inside can claim more than [`MAX_DATAGRAM`] bytes.
pub fn decode_datagram<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    whole(what, bytes, decode_datagram_prefix(what, bytes)?)
}

/// Appends the encoding of a datagram-sized value to `buffer` (no allocation when it has
/// room); returns how many bytes were added. On error `buffer` is left as it was.
pub fn encode_datagram_into<T: Serialize>(
    what: &'static str,
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<usize, CodecError> {
    append_with(what, value, buffer, DATAGRAM_CONFIG)
}

/// How many bytes the encoding of a datagram-sized value takes, without writing it anywhere.
pub fn encoded_datagram_len<T: Serialize>(
    what: &'static str,
    value: &T,
) -> Result<usize, CodecError> {
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut counter, DATAGRAM_CONFIG)
        .map(|_| counter.bytes_written)
        .map_err(|e| CodecError::Encode {
            what,
            message: e.to_string(),
        })
}

/// Decodes one datagram-sized value from the start of `bytes`; returns it and how many bytes
/// it took, so a caller can decode a datagram part by part. Input longer than
/// [`MAX_DATAGRAM`] is an error.
pub fn decode_datagram_prefix<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(CodecError::Decode {
            what,
            message: format!("{} bytes is more than {MAX_DATAGRAM}", bytes.len()),
        });
    }
    decode_prefix_with(what, bytes, DATAGRAM_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        values: Vec<u32>,
        nested: Option<Box<Sample>>,
    }

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let value = Sample {
            id: 7,
            name: "seven".into(),
            values: vec![1, 2, 3],
            nested: None,
        };
        let mut bytes = encode("sample", &value).expect("encodes");
        assert_eq!(decode::<Sample>("sample", &bytes), Ok(value));
        bytes.push(0);
        assert_eq!(
            decode::<Sample>("sample", &bytes),
            Err(CodecError::Trailing {
                what: "sample",
                extra: 1
            })
        );
    }

    #[test]
    fn a_huge_claimed_length_fails_without_allocating_it() {
        // A Vec<u8> whose varint length prefix claims 2^40 bytes, followed by nothing.
        let bytes = [253u8, 0, 0, 0, 0, 0, 1, 0, 0];
        let error = decode::<Vec<u8>>("bytes", &bytes).unwrap_err();
        assert!(matches!(error, CodecError::Decode { .. }), "{error}");
    }

    #[test]
    fn bytes_that_do_not_decode_are_described_in_words_not_the_decoders_enum() {
        // A 0xff tag where a u32 (varint) is expected, then a value cut short.
        for (bytes, expected) in [
            (
                &[0xffu8, 0xff, 0xff][..],
                "not encoded as this protocol encodes numbers",
            ),
            (&[0xfb, 0x01][..], "bytes short of a whole value"),
        ] {
            let error = decode::<u32>("number", bytes).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains('{'), "{error}");
        }
        let text = decode::<String>("text", &[2, 0xff, 0xfe])
            .unwrap_err()
            .to_string();
        assert!(text.contains("not UTF-8"), "{text}");
    }

    #[test]
    fn a_request_of_many_short_texts_decodes_though_it_claims_more_than_it_takes() {
        // 2,200,000 empty texts: 2.2 MB encoded, 17.6 MB as bincode counts them decoded
        // (each length prefix at 8 bytes), more than the plain limit.
        let texts = vec![""; 2_200_000];
        let bytes = encode("texts", &texts).expect("encodes");
        assert!(bytes.len() < 3 << 20);
        assert!(matches!(
            decode::<Vec<String>>("texts", &bytes),
            Err(CodecError::TooLarge { .. })
        ));
        let decoded: Vec<&str> = decode_borrowed("texts", &bytes).expect("decodes");
        assert_eq!(decoded.len(), texts.len());
    }

    #[test]
    fn an_answer_that_fits_on_the_wire_decodes_though_it_claims_more() {
        // 9,000,000 empty texts: 9 MB encoded, 72 MB as bincode counts them, more than
        // MAX_LARGE; the answer's claim limit takes it, and the wire limit still holds.
        let texts = vec![String::new(); 9_000_000];
        let bytes = encode("texts", &texts).expect("encodes");
        assert!(bytes.len() < MAX_LARGE && bytes.len() * 8 > MAX_LARGE);
        let decoded: Vec<String> = decode_large("texts", &bytes).expect("decodes");
        assert_eq!(decoded.len(), texts.len());
        let too_long = vec![0u8; MAX_LARGE + 1];
        assert_eq!(
            decode_large::<Vec<String>>("answer", &too_long),
            Err(CodecError::TooLarge {
                what: "answer",
                limit: MAX_LARGE
            })
        );
    }

    #[test]
    fn encode_into_appends() {
        let mut buffer = vec![9u8];
        let added = encode_into("number", &300u32, &mut buffer).expect("encodes");
        assert_eq!(buffer.len(), 1 + added);
        assert_eq!(decode::<u32>("number", &buffer[1..]), Ok(300));
    }

    #[test]
    fn datagram_parts_concatenate_to_the_whole() {
        let value = Sample {
            id: 300,
            name: "parts".into(),
            values: vec![1, 70_000],
            nested: None,
        };
        let whole = encode_datagram("sample", &value).expect("encodes");
        assert_eq!(
            encoded_datagram_len("sample", &value).expect("counts"),
            whole.len()
        );
        let mut parts = Vec::new();
        encode_datagram_into("id", &value.id, &mut parts).expect("encodes");
        encode_datagram_into("name", &value.name, &mut parts).expect("encodes");
        encode_datagram_into("values", &value.values, &mut parts).expect("encodes");
        encode_datagram_into("nested", &value.nested, &mut parts).expect("encodes");
        assert_eq!(parts, whole);
        let (id, used) = decode_datagram_prefix::<u64>("id", &whole).expect("decodes");
        assert_eq!(id, 300);
        let (name, more) = decode_datagram_prefix::<String>("name", &whole[used..]).expect("name");
        assert_eq!((name.as_str(), used + more < whole.len()), ("parts", true));
        assert!(decode_datagram_prefix::<String>("name", &[200]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Sample>("sample", &bytes);
        }

        #[test]
        fn any_sample_round_trips(id in any::<u64>(), name in ".{0,40}", values in proptest::collection::vec(any::<u32>(), 0..20)) {
            let value = Sample { id, name, values, nested: None };
            let bytes = encode("sample", &value).expect("encodes");
            prop_assert_eq!(decode::<Sample>("sample", &bytes), Ok(value));
        }
    }
}
