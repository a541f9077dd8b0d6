//! Frames on the wire, sans-IO: bytes in, frames out; frames in, bytes out.
//!
//! A connection starts with an 8-byte preamble — magic `GLTH`, protocol version (u16, big
//! endian), two zero bytes — so garbage and version mismatches are caught before anything is
//! parsed. Then frames, each a 12-byte header and a payload:
//!
//! ```text
//! 0      1      2         4                8                12
//! | type | flags| reserved | stream id u32 | length u32     | payload (length bytes)
//! ```
//!
//! All integers big endian. `stream` pairs a request with its response(s), so many requests
//! can be in flight on one connection and be answered out of order. The length is checked
//! against the configured maximum (`net.max_frame`) before any payload byte is buffered, so a
//! hostile 4 GiB length costs nothing. The header layout never changes between protocol
//! versions, and `Error` frames carry plain UTF-8 text, so a peer on another version can still
//! read why it was refused.
//!
//! A response larger than one frame (a long task list, the outcomes of a large `wait`) goes
//! as `ResponsePart` frames followed by the `Response` frame with the rest: the receiver joins
//! the payloads before decoding, up to [`MAX_RESPONSE`] bytes in all.

use super::super::units::HumanSize;

/// First bytes of every connection.
pub const MAGIC: [u8; 4] = *b"GLTH";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 9;
/// The most bytes one response may take in all its frames; a node refuses to send more and
/// a client to take more.
pub const MAX_RESPONSE: usize = crate::codec::MAX_LARGE;
/// How the text of an `Error` frame refusing a connection only for now (the node has as many
/// connections as it takes) begins: a client reports it as busy, to be retried.
pub const BUSY_REFUSAL: &str = "too many connections";
/// The text of the `Error` frame a node sends every open connection as it stops serving
/// (after its shutdown), so a client can tell a stopped node from a crashed one.
pub const SHUTDOWN_NOTICE: &str = "the node shut down";

/// Whether a connection's closing reason (bare, or as a client error's text ends) is the
/// node's [`SHUTDOWN_NOTICE`].
pub fn is_shutdown_notice(reason: &str) -> bool {
    reason.ends_with(SHUTDOWN_NOTICE)
}
/// Bytes in the connection preamble.
pub const PREAMBLE_LEN: usize = 8;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 12;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Client → node: who is connecting (payload `Hello`).
    Hello = 1,
    /// Node → client: handshake accepted (payload `Welcome`).
    Welcome = 2,
    /// Client → node: a request on a new stream (payload `Request`).
    Request = 3,
    /// Node → client: the answer to a request (payload `Response`).
    Response = 4,
    /// Node → client: one item of a stream (payload `StreamItem`).
    StreamItem = 5,
    /// Node → client: a stream ended (empty payload).
    StreamEnd = 6,
    /// Either way: the connection is being closed for this reason (UTF-8 text).
    Error = 7,
    /// Client → node: stop the stream with this id (empty payload).
    CancelStream = 8,
    /// Node → client: a leading piece of a response too large for one frame (raw bytes of
    /// the encoded `Response`, continued by the next piece or the `Response` frame).
    ResponsePart = 9,
}

impl FrameType {
    /// Every frame type.
    pub const ALL: [FrameType; 9] = [
        FrameType::Hello,
        FrameType::Welcome,
        FrameType::Request,
        FrameType::Response,
        FrameType::StreamItem,
        FrameType::StreamEnd,
        FrameType::Error,
        FrameType::CancelStream,
        FrameType::ResponsePart,
    ];

    fn from_byte(byte: u8) -> Option<FrameType> {
        FrameType::ALL.into_iter().find(|t| *t as u8 == byte)
    }
}

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What it carries.
    pub frame_type: FrameType,
    /// Which request it belongs to (0 for connection-level frames).
    pub stream: u32,
    /// Payload bytes that follow.
    pub length: u32,
}

/// Four bytes as hex, and as text where they are printable: `0x47 0x45 0x54 0x20 ("GET ")`.
fn magic_text(bytes: &[u8; 4]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
    let text: String = bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} ({text:?})", hex.join(" "))
}

/// Bytes that are not a valid frame or preamble.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The connection did not start with `GLTH`.
    #[error("not a goliath connection: expected magic \"GLTH\", got {}", magic_text(.0))]
    BadMagic([u8; 4]),
    /// The peer speaks another protocol version.
    #[error(
        "protocol version mismatch: this side speaks version {ours}, the peer speaks version {theirs}; run the same goliath version on both sides"
    )]
    Version {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// A frame type this build does not know.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// Reserved header bits were set.
    #[error("frame header has reserved bits set ({0:#06x})")]
    Reserved(u32),
    /// A frame longer than allowed.
    #[error("frame of {length} bytes exceeds the limit of {} (net.max_frame)", HumanSize::approx(u64::from(*max)))]
    TooLarge {
        /// Claimed payload length.
        length: u32,
        /// The limit.
        max: u32,
    },
}

/// The preamble this build sends.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let version = PROTOCOL_VERSION.to_be_bytes();
    [
        MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], version[0], version[1], 0, 0,
    ]
}

/// Checks a peer's preamble.
pub fn check_preamble(bytes: &[u8; PREAMBLE_LEN]) -> Result<(), FrameError> {
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let theirs = u16::from_be_bytes([bytes[4], bytes[5]]);
    if theirs != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    Ok(())
}

/// Parses a header from the start of `bytes`; `None` until 12 bytes are there.
pub fn parse_header(bytes: &[u8], max_frame: u32) -> Result<Option<FrameHeader>, FrameError> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let frame_type = FrameType::from_byte(header[0]).ok_or(FrameError::UnknownType(header[0]))?;
    let reserved = u32::from_be_bytes([0, header[1], header[2], header[3]]);
    if reserved != 0 {
        return Err(FrameError::Reserved(reserved));
    }
    let stream = u32::from_be_bytes([
        header[STREAM_AT],
        header[STREAM_AT + 1],
        header[STREAM_AT + 2],
        header[STREAM_AT + 3],
    ]);
    let length = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if length > max_frame {
        return Err(FrameError::TooLarge {
            length,
            max: max_frame,
        });
    }
    Ok(Some(FrameHeader {
        frame_type,
        stream,
        length,
    }))
}

/// Where a header holds its stream id (4 bytes, big-endian), after type and reserved bytes.
const STREAM_AT: usize = 4;

/// Rewrites the stream id of the frame starting at `frame` (a client resending one encoded
/// request on fresh streams). Frames shorter than a header are left as they are.
pub fn set_stream(frame: &mut [u8], stream: u32) {
    if let Some(field) = frame.get_mut(STREAM_AT..STREAM_AT + 4) {
        field.copy_from_slice(&stream.to_be_bytes());
    }
}

/// Appends a header; the payload follows.
pub fn write_header(out: &mut Vec<u8>, frame_type: FrameType, stream: u32, length: u32) {
    out.push(frame_type as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
}

/// Appends a whole frame with a raw payload.
pub fn write_frame(out: &mut Vec<u8>, frame_type: FrameType, stream: u32, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    write_header(out, frame_type, stream, length);
    out.extend_from_slice(payload);
}

/// Appends a frame whose payload is `value` encoded by the codec module. The frame is
/// rolled back if encoding fails or the payload would exceed `max_frame`.
pub fn write_message<T: serde::Serialize>(
    out: &mut Vec<u8>,
    frame_type: FrameType,
    stream: u32,
    value: &T,
    max_frame: u32,
) -> Result<(), MessageError> {
    let start = out.len();
    write_header(out, frame_type, stream, 0);
    let length = match crate::codec::encode_into("frame payload", value, out) {
        Ok(length) => length,
        Err(error) => {
            out.truncate(start);
            return Err(MessageError::Codec(error));
        }
    };
    let length32 = u32::try_from(length).unwrap_or(u32::MAX);
    if length32 > max_frame {
        out.truncate(start);
        return Err(MessageError::Frame(FrameError::TooLarge {
            length: length32,
            max: max_frame,
        }));
    }
    out[start + 8..start + 12].copy_from_slice(&length32.to_be_bytes());
    Ok(())
}

/// Appends a response on `stream`: one `Response` frame when it fits in `max_frame` bytes,
/// else `ResponsePart` frames of `max_frame` bytes and a last `Response` frame with the rest.
/// Nothing is appended if encoding fails or the whole would exceed [`MAX_RESPONSE`].
pub fn write_response<T: serde::Serialize>(
    out: &mut Vec<u8>,
    stream: u32,
    value: &T,
    max_frame: u32,
) -> Result<(), MessageError> {
    // Encoded once, in place after a header: one frame when it fits (the usual case), else
    // the payload is cut into pieces where it lies.
    let start = out.len();
    write_header(out, FrameType::Response, stream, 0);
    let length = match crate::codec::encode_into("response", value, out) {
        Ok(length) => length,
        Err(error) => {
            out.truncate(start);
            return Err(MessageError::Codec(error));
        }
    };
    if let Ok(length32) = u32::try_from(length)
        && length32 <= max_frame
    {
        out[start + 8..start + 12].copy_from_slice(&length32.to_be_bytes());
        return Ok(());
    }
    if length > MAX_RESPONSE {
        out.truncate(start);
        return Err(MessageError::ResponseTooLarge { bytes: length });
    }
    let payload = out.split_off(start + HEADER_LEN);
    out.truncate(start);
    let piece = (max_frame as usize).max(1);
    let mut chunks = payload.chunks(piece).peekable();
    while let Some(chunk) = chunks.next() {
        let frame_type = if chunks.peek().is_some() {
            FrameType::ResponsePart
        } else {
            FrameType::Response
        };
        write_frame(out, frame_type, stream, chunk);
    }
    Ok(())
}

/// What a client sends first on a new connection: the preamble, then its `Hello` (the
/// handshake message) as frame 0 on stream 0.
pub fn opening<T: serde::Serialize>(hello: &T, max_frame: u32) -> Result<Vec<u8>, MessageError> {
    let mut bytes = preamble().to_vec();
    write_message(&mut bytes, FrameType::Hello, 0, hello, max_frame)?;
    Ok(bytes)
}

/// A frame that could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Bad framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Bad payload.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    /// A response larger than [`MAX_RESPONSE`] in all.
    #[error("the answer would take {}, more than the {} one answer may take", HumanSize::approx(*bytes as u64), HumanSize::approx(MAX_RESPONSE as u64))]
    ResponseTooLarge {
        /// Its encoded size.
        bytes: usize,
    },
}

/// A connection's incoming bytes, buffered until whole frames are there. The buffer never
/// holds more than one header plus `max_frame` bytes beyond what the caller has consumed.
#[derive(Debug)]
pub struct FrameReader {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: u32,
}

/// Bytes a reader asks for at a time when no frame is pending; a buffer larger than this
/// holds a frame being received that is larger.
pub const READ_CHUNK: usize = 16 * 1024;

impl FrameReader {
    /// A reader refusing frames longer than `max_frame`.
    pub fn new(max_frame: u32) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Space to read more bytes into; call [`FrameReader::filled`] with how many arrived.
    /// Empty when whole frames are waiting: take them with [`FrameReader::next_frame`] first.
    /// The buffer grows only to fit the frame being received (at most a header plus
    /// `max_frame`), so it stays bounded whatever the peer claims.
    pub fn spare(&mut self) -> Result<&mut [u8], FrameError> {
        let target = self.needed()?;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buffer.len() - self.start < target {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buffer.len() < self.start + target {
            self.buffer.resize(self.start + target, 0);
        }
        Ok(&mut self.buffer[self.end..])
    }

    /// The bytes the buffer must hold to receive the frame begun (its header and payload), or
    /// a header's when none is: what [`FrameReader::spare`] grows it to, at least
    /// [`READ_CHUNK`].
    pub fn needed(&self) -> Result<usize, FrameError> {
        Ok(match parse_header(self.buffered(), self.max_frame)? {
            Some(header) => HEADER_LEN + header.length as usize,
            None => HEADER_LEN,
        }
        .max(READ_CHUNK))
    }

    /// Gives back what the buffer grew to for a large frame once no large frame is being
    /// received: keeps [`READ_CHUNK`] bytes (and what is buffered). Returns whether it did.
    pub fn shrink(&mut self) -> Result<bool, FrameError> {
        let pending = self.end - self.start;
        if self.buffer.len() <= READ_CHUNK || pending > READ_CHUNK || self.needed()? > READ_CHUNK {
            return Ok(false);
        }
        let mut smaller = vec![0; READ_CHUNK];
        smaller[..pending].copy_from_slice(&self.buffer[self.start..self.end]);
        self.buffer = smaller;
        self.start = 0;
        self.end = pending;
        Ok(true)
    }

    /// Records that `count` bytes were read into the space from [`FrameReader::spare`].
    pub fn filled(&mut self, count: usize) {
        self.end = (self.end + count).min(self.buffer.len());
    }

    /// Copies bytes in, as long as there is room (for tests and fuzzing); returns how many
    /// were taken. Stops early when whole frames are waiting to be taken.
    pub fn push(&mut self, bytes: &[u8]) -> Result<usize, FrameError> {
        let mut taken = 0;
        while taken < bytes.len() {
            let spare = self.spare()?;
            if spare.is_empty() {
                break;
            }
            let take = spare.len().min(bytes.len() - taken);
            spare[..take].copy_from_slice(&bytes[taken..taken + take]);
            self.filled(take);
            taken += take;
        }
        Ok(taken)
    }

    /// The next whole frame, if one is buffered. The payload borrows the buffer.
    pub fn next_frame(&mut self) -> Result<Option<(FrameHeader, &[u8])>, FrameError> {
        let Some(header) = parse_header(self.buffered(), self.max_frame)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + header.length as usize;
        if self.end - self.start < total {
            return Ok(None);
        }
        let payload_start = self.start + HEADER_LEN;
        self.start += total;
        Ok(Some((
            header,
            &self.buffer[payload_start..payload_start + header.length as usize],
        )))
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Bytes allocated for the buffer.
    pub fn capacity(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_response_in_pieces_joins_back_to_the_response(
            value in proptest::collection::vec(any::<u32>(), 0..3000),
            max_frame in 16u32..4096,
        ) {
            let mut bytes = Vec::new();
            write_response(&mut bytes, 7, &value, max_frame).expect("writes");
            let mut reader = FrameReader::new(max_frame);
            let mut joined = Vec::new();
            let mut at = 0;
            let last = loop {
                let spare = reader.spare().expect("room");
                let count = spare.len().min(bytes.len() - at);
                spare[..count].copy_from_slice(&bytes[at..at + count]);
                reader.filled(count);
                at += count;
                let mut done = None;
                while let Some((header, payload)) = reader.next_frame().expect("valid frames") {
                    prop_assert_eq!(header.stream, 7);
                    prop_assert!(payload.len() <= max_frame as usize);
                    joined.extend_from_slice(payload);
                    match header.frame_type {
                        FrameType::ResponsePart => {}
                        FrameType::Response => done = Some(()),
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                if done.is_some() {
                    break at;
                }
            };
            prop_assert_eq!(last, bytes.len(), "the response frame comes last");
            let decoded: Vec<u32> = crate::codec::decode("response", &joined).expect("decodes");
            prop_assert_eq!(decoded, value);
        }
    }

    #[test]
    fn set_stream_moves_a_frame_to_another_stream_and_nothing_else() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, FrameType::Request, 1, b"payload");
        let before = bytes.clone();
        set_stream(&mut bytes, 0x0102_0304);
        let header = parse_header(&bytes, 1 << 20)
            .expect("valid")
            .expect("whole");
        assert_eq!(header.stream, 0x0102_0304);
        assert_eq!(header.frame_type, FrameType::Request);
        assert_eq!(header.length, 7);
        assert_eq!(bytes[HEADER_LEN..], before[HEADER_LEN..]);
        let mut short = [0u8; 5];
        set_stream(&mut short, 9);
        assert_eq!(short, [0u8; 5], "too short for a header: untouched");
    }

    #[test]
    fn a_client_opens_with_the_preamble_then_its_hello() {
        let hello = crate::runtime::net::Hello {
            client: "test".into(),
            cluster: "goliath".into(),
        };
        let bytes = opening(&hello, 1 << 20).expect("encodes");
        assert_eq!(bytes[..PREAMBLE_LEN], preamble());
        let mut reader = FrameReader::new(1 << 20);
        reader.push(&bytes[PREAMBLE_LEN..]).expect("valid");
        let (header, payload) = reader.next_frame().expect("valid").expect("whole frame");
        assert_eq!((header.frame_type, header.stream), (FrameType::Hello, 0));
        assert_eq!(crate::codec::decode("hello", payload), Ok(hello.clone()));
        assert!(
            opening(&hello, 4).is_err(),
            "a hello larger than max_frame is refused"
        );
    }

    #[test]
    fn preamble_checks_magic_and_version() {
        assert_eq!(check_preamble(&preamble()), Ok(()));
        assert_eq!(
            check_preamble(b"GET / HT"),
            Err(FrameError::BadMagic(*b"GET "))
        );
        assert!(
            FrameError::BadMagic(*b"GET ")
                .to_string()
                .ends_with("got 0x47 0x45 0x54 0x20 (\"GET \")"),
            "hex that reads as hex, and the text"
        );
        let mut other = preamble();
        let theirs = PROTOCOL_VERSION + 1;
        other[4..6].copy_from_slice(&theirs.to_be_bytes());
        let error = check_preamble(&other).unwrap_err();
        assert_eq!(
            error,
            FrameError::Version {
                ours: PROTOCOL_VERSION,
                theirs
            }
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("version {PROTOCOL_VERSION}"))
                && text.contains(&format!("version {theirs}")),
            "{text}"
        );
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, FrameType::Request, 7, b"hello");
        write_frame(&mut bytes, FrameType::StreamEnd, 8, b"");
        write_frame(&mut bytes, FrameType::Response, 9, &[1u8; 40_000]);
        for cut in (0..bytes.len())
            .step_by(97)
            .chain([1, 11, 12, 13, 17, 29, bytes.len()])
        {
            let mut reader = FrameReader::new(1 << 20);
            let mut seen = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                let mut rest = part;
                loop {
                    let taken = reader.push(rest).expect("valid");
                    rest = &rest[taken..];
                    while let Some((header, payload)) = reader.next_frame().expect("valid") {
                        seen.push((header.stream, payload.len()));
                    }
                    if rest.is_empty() {
                        break;
                    }
                }
            }
            assert_eq!(seen, vec![(7, 5), (8, 0), (9, 40_000)], "cut at {cut}");
            assert_eq!(reader.pending(), 0);
        }
    }

    #[test]
    fn a_buffer_grown_for_a_large_frame_shrinks_back_once_it_is_taken() {
        let mut reader = FrameReader::new(1 << 20);
        let mut large = Vec::new();
        write_frame(&mut large, FrameType::Request, 1, &[7u8; 200_000]);
        // Half of the large frame.
        assert_eq!(reader.push(&large[..100_000]).expect("valid"), 100_000);
        assert_eq!(reader.needed().expect("valid"), large.len());
        assert!(
            !reader.shrink().expect("valid"),
            "the large frame is not taken yet"
        );
        assert!(reader.capacity() >= large.len());
        reader.push(&large[100_000..]).expect("valid");
        let (header, payload) = reader.next_frame().expect("valid").expect("whole");
        assert_eq!((header.stream, payload.len()), (1, 200_000));
        assert!(reader.shrink().expect("valid"));
        assert_eq!(reader.capacity(), READ_CHUNK);
        let mut small = Vec::new();
        write_frame(&mut small, FrameType::Request, 2, b"small");
        reader.push(&small).expect("valid");
        let (header, payload) = reader.next_frame().expect("valid").expect("whole");
        assert_eq!((header.stream, payload), (2, &b"small"[..]));
    }

    #[test]
    fn a_4_gib_length_is_refused_before_buffering() {
        let mut reader = FrameReader::new(1 << 20);
        let mut header = Vec::new();
        write_header(&mut header, FrameType::Request, 1, u32::MAX);
        let error = reader
            .push(&header)
            .and_then(|_| reader.next_frame().map(|_| ()))
            .unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                length: u32::MAX,
                max: 1 << 20
            }
        );
        assert!(
            reader.capacity() <= 64 * 1024,
            "nothing large was allocated: {}",
            reader.capacity()
        );
    }

    #[test]
    fn unknown_types_and_reserved_bits_are_errors() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, FrameType::Request, 1, b"x");
        bytes[0] = 99;
        assert_eq!(parse_header(&bytes, 1024), Err(FrameError::UnknownType(99)));
        bytes[0] = FrameType::Request as u8;
        bytes[2] = 1;
        assert!(matches!(
            parse_header(&bytes, 1024),
            Err(FrameError::Reserved(_))
        ));
    }

    #[test]
    fn oversized_messages_are_rolled_back() {
        let mut out = vec![1, 2, 3];
        let error =
            write_message(&mut out, FrameType::Response, 1, &vec![0u8; 2000], 1000).unwrap_err();
        assert!(matches!(
            error,
            MessageError::Frame(FrameError::TooLarge { .. })
        ));
        assert_eq!(out, vec![1, 2, 3]);
    }

    proptest! {
        #[test]
        fn any_frame_round_trips(kind in 0usize..8, stream in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut bytes = Vec::new();
            write_frame(&mut bytes, FrameType::ALL[kind], stream, &payload);
            let mut reader = FrameReader::new(4096);
            prop_assert_eq!(reader.push(&bytes).expect("valid"), bytes.len());
            let (header, body) = reader.next_frame().expect("valid").expect("whole");
            prop_assert_eq!(header.frame_type, FrameType::ALL[kind]);
            prop_assert_eq!(header.stream, stream);
            prop_assert_eq!(body, &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut reader = FrameReader::new(1024);
            let mut rest = &bytes[..];
            while let Ok(taken) = reader.push(rest) {
                rest = &rest[taken..];
                let mut any = false;
                while let Ok(Some(_)) = reader.next_frame() {
                    any = true;
                }
                if rest.is_empty() || (!any && taken == 0) {
                    break;
                }
            }
            prop_assert!(reader.capacity() <= 64 * 1024);
        }
    }
}
