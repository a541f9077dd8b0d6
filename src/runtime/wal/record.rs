//! The WAL's record framing and record types: sans-IO, bytes in and bytes out.
//!
//! A record on disk:
//!
//! ```text
//! offset 0  u32 LE  payload length
//!        4  u32 LE  CRC32C of (length bytes, type byte, payload)
//!        8  u8      type (low 6 bits) | CONTINUES (0x80: more records of this group follow)
//!                   | AFTER_SYNC (0x40: first record of a write that began after an fdatasync)
//!        9  payload (the codec module's bincode, size-limited)
//!           zero padding to a multiple of 8 bytes
//! ```
//!
//! Records are written in *groups*: every record but the last of a group carries the
//! `CONTINUES` flag. A group is all or nothing on recovery (a batch submission is one group),
//! and the writer never splits a group across segments. An all-zero header marks the end of
//! the written part of a (zero-filled, preallocated) segment.
//!
//! Since format 4 every segment but the newest ends with a [`SegmentEnd`] record, written and
//! made durable before the next segment takes a record: without it, a closed segment whose
//! last records were lost as zeros (pages never written back, or zeroed) read as one that
//! simply ended early, and the acknowledged tasks they held were dropped without a word.
//!
//! Since format 2 the writer flags the first record of every write that follows an
//! fdatasync (and a segment's header) `AFTER_SYNC`: everything before such a record was
//! durable when it was written. Damage in the last segment with no flagged record after it
//! therefore lies in the last write, which a power loss can leave with any of its pages
//! missing, and was never acknowledged; damage followed by a flagged record is real damage.
//!
//! Decoding checks the length against the maximum and against the bytes that remain before
//! anything is read or allocated; the payload is a borrowed slice until a caller decodes it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::runtime::task::TaskState;

/// Bytes of a record header.
pub const HEADER_LEN: usize = 9;
/// Records start at multiples of this many bytes.
pub const ALIGN: usize = 8;
/// The largest payload any record may have (1 MiB); segments may set a smaller bound.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// The on-disk format version, in every segment and checkpoint header.
pub const FORMAT_VERSION: u32 = 5;
/// Flag in the type byte: the group goes on with the next record.
const CONTINUES: u8 = 0x80;

/// Flag in the type byte: this record begins a write made after an fdatasync.
const AFTER_SYNC: u8 = 0x40;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RecordType {
    /// First record of every segment: [`SegmentHeader`].
    Segment = 1,
    /// Tasks were accepted: [`Accepted`].
    Accepted = 2,
    /// A task started a run: [`Started`].
    Started = 3,
    /// A task finished: [`Finished`].
    Finished = 4,
    /// Someone asked to cancel a task: [`Cancelled`].
    Cancelled = 5,
    /// Last record of a segment closed for the next one (format 4 on): [`SegmentEnd`].
    SegmentEnd = 6,
    /// First record of a checkpoint file: [`CheckpointBegin`].
    CheckpointBegin = 16,
    /// A task in flight at the checkpoint: [`CheckpointTask`].
    CheckpointTask = 17,
    /// A finished task kept in the history: [`CheckpointFinished`].
    CheckpointFinished = 18,
    /// An idempotency key and its ids: [`CheckpointKey`].
    CheckpointKey = 19,
    /// Last record of a checkpoint file: [`CheckpointEnd`].
    CheckpointEnd = 20,
}

impl RecordType {
    /// The type for a type byte (flags removed), if it is one.
    pub fn from_byte(byte: u8) -> Option<RecordType> {
        Some(match byte & !(CONTINUES | AFTER_SYNC) {
            1 => RecordType::Segment,
            2 => RecordType::Accepted,
            3 => RecordType::Started,
            4 => RecordType::Finished,
            5 => RecordType::Cancelled,
            6 => RecordType::SegmentEnd,
            16 => RecordType::CheckpointBegin,
            17 => RecordType::CheckpointTask,
            18 => RecordType::CheckpointFinished,
            19 => RecordType::CheckpointKey,
            20 => RecordType::CheckpointEnd,
            _ => return None,
        })
    }

    /// The lowercase name used in `goliath wal dump`.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Segment => "segment",
            RecordType::Accepted => "accepted",
            RecordType::Started => "started",
            RecordType::Finished => "finished",
            RecordType::Cancelled => "cancelled",
            RecordType::SegmentEnd => "segment_end",
            RecordType::CheckpointBegin => "checkpoint_begin",
            RecordType::CheckpointTask => "checkpoint_task",
            RecordType::CheckpointFinished => "checkpoint_finished",
            RecordType::CheckpointKey => "checkpoint_key",
            RecordType::CheckpointEnd => "checkpoint_end",
        }
    }
}

/// Bytes a record with `payload_len` payload bytes takes, padding included.
pub const fn frame_len(payload_len: usize) -> usize {
    (HEADER_LEN + payload_len).div_ceil(ALIGN) * ALIGN
}

/// One whole, checksum-verified record, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Where the record starts.
    pub offset: usize,
    /// Its type.
    pub record_type: RecordType,
    /// Whether more records of its group follow.
    pub continues: bool,
    /// Whether it begins a write made after an fdatasync (format 2 on).
    pub after_sync: bool,
    /// The encoded payload.
    pub payload: &'a [u8],
    /// Bytes the record takes, padding included.
    pub len: usize,
}

/// Why the bytes at an offset are not a whole, valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The record runs past the end of the bytes.
    #[error("record at offset {offset} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Where the record starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The length field is larger than any record may be.
    #[error("record at offset {offset} claims a {length}-byte payload; the most allowed is {max}")]
    TooLong {
        /// Where the record starts.
        offset: usize,
        /// The claimed payload length.
        length: u64,
        /// The bound.
        max: usize,
    },
    /// The type byte names no record type.
    #[error("record at offset {offset} has unknown type byte {type_byte:#04x}")]
    UnknownType {
        /// Where the record starts.
        offset: usize,
        /// The byte.
        type_byte: u8,
    },
    /// The checksum does not match.
    #[error(
        "record at offset {offset} fails its checksum (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Checksum {
        /// Where the record starts.
        offset: usize,
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// Padding after the payload is not zero.
    #[error("record at offset {offset} has non-zero padding")]
    Padding {
        /// Where the record starts.
        offset: usize,
    },
}

impl FrameError {
    /// Where the offending record starts.
    pub fn offset(&self) -> usize {
        match *self {
            FrameError::Truncated { offset, .. }
            | FrameError::TooLong { offset, .. }
            | FrameError::UnknownType { offset, .. }
            | FrameError::Checksum { offset, .. }
            | FrameError::Padding { offset } => offset,
        }
    }
}

fn checksum(length: &[u8], type_and_payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length), type_and_payload)
}

/// Whether the record header at `offset` says more records of its group follow, read from
/// its type byte alone (for a record whose checksum failed: its group's later records are
/// then part of a batch that cannot be whole). `None` past the end.
pub fn header_continues(bytes: &[u8], offset: usize) -> Option<bool> {
    let type_byte = *bytes.get(offset.checked_add(HEADER_LEN - 1)?)?;
    Some(type_byte & CONTINUES != 0)
}

/// Reads the record at `offset`. `Ok(None)` means the header there is all zero (or fewer than
/// a header's bytes remain and they are all zero): the end of the written log.
pub fn read_frame(
    bytes: &[u8],
    offset: usize,
    max_payload: usize,
) -> Result<Option<Frame<'_>>, FrameError> {
    let rest = bytes.get(offset..).unwrap_or(&[]);
    let header = &rest[..rest.len().min(HEADER_LEN)];
    if header.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if rest.len() < HEADER_LEN {
        return Err(FrameError::Truncated {
            offset,
            needed: HEADER_LEN,
            available: rest.len(),
        });
    }
    let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let stored = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let type_byte = rest[8];
    // Length first: against the bound, then against what is there. Nothing is allocated.
    let max = max_payload.min(MAX_PAYLOAD);
    if u64::from(length) > max as u64 {
        return Err(FrameError::TooLong {
            offset,
            length: u64::from(length),
            max,
        });
    }
    let length = length as usize;
    let needed = frame_len(length);
    if rest.len() < HEADER_LEN + length {
        return Err(FrameError::Truncated {
            offset,
            needed,
            available: rest.len(),
        });
    }
    let computed = checksum(&rest[..4], &rest[8..HEADER_LEN + length]);
    if computed != stored {
        return Err(FrameError::Checksum {
            offset,
            stored,
            computed,
        });
    }
    let Some(record_type) = RecordType::from_byte(type_byte) else {
        return Err(FrameError::UnknownType { offset, type_byte });
    };
    // Padding may be cut off at the very end of a file; what is there must be zero.
    let padding_end = needed.min(rest.len());
    if rest[HEADER_LEN + length..padding_end]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(FrameError::Padding { offset });
    }
    Ok(Some(Frame {
        offset,
        record_type,
        continues: type_byte & CONTINUES != 0,
        after_sync: type_byte & AFTER_SYNC != 0,
        payload: &rest[HEADER_LEN..HEADER_LEN + length],
        len: needed,
    }))
}

/// Why a record could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The codec refused the value.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The payload is larger than a record may be.
    #[error(
        "a {record} record of {bytes} bytes is larger than the WAL allows ({max} bytes with this wal.segment_size)"
    )]
    TooLarge {
        /// Which record type.
        record: &'static str,
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// The whole group is larger than a segment can hold.
    #[error(
        "this submission takes {bytes} bytes in the WAL, more than one submission may ({max} bytes, half of wal.segment_size); submit it in smaller batches or raise wal.segment_size"
    )]
    GroupTooLarge {
        /// The group's size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
}

/// Appends one group of records to a buffer. Records are encoded in place; the headers
/// (flags and checksums) are filled in by [`GroupEncoder::finish`]. Dropping the encoder
/// without finishing removes everything it added.
#[derive(Debug)]
pub struct GroupEncoder<'b> {
    buffer: &'b mut Vec<u8>,
    start: usize,
    records: u64,
    max_payload: usize,
    max_group: usize,
    finished: bool,
}

impl<'b> GroupEncoder<'b> {
    /// Starts a group at the end of `buffer`. Records may have up to `max_payload` payload
    /// bytes and the group up to `max_group` bytes in all.
    pub fn new(buffer: &'b mut Vec<u8>, max_payload: usize, max_group: usize) -> Self {
        let start = buffer.len();
        Self {
            buffer,
            start,
            records: 0,
            max_payload: max_payload.min(MAX_PAYLOAD),
            max_group,
            finished: false,
        }
    }

    /// Adds a record.
    pub fn push<T: Serialize>(
        &mut self,
        record_type: RecordType,
        value: &T,
    ) -> Result<(), EncodeError> {
        let at = self.buffer.len();
        self.buffer.extend_from_slice(&[0; HEADER_LEN]);
        let name = record_type.name();
        let length = match codec::encode_into(name, value, self.buffer) {
            Ok(length) => length,
            Err(error) => {
                self.buffer.truncate(at);
                return Err(error.into());
            }
        };
        if length > self.max_payload {
            self.buffer.truncate(at);
            return Err(EncodeError::TooLarge {
                record: name,
                bytes: length,
                max: self.max_payload,
            });
        }
        self.buffer[at..at + 4].copy_from_slice(&(length as u32).to_le_bytes());
        self.buffer[at + 8] = record_type as u8;
        let padded = at + frame_len(length);
        self.buffer.resize(padded, 0);
        self.records += 1;
        Ok(())
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes added so far.
    pub fn bytes(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Sets the group flags and checksums; returns (records, bytes). A group larger than
    /// `max_group` is removed and refused.
    pub fn finish(mut self) -> Result<(u64, usize), EncodeError> {
        let bytes = self.bytes();
        if bytes > self.max_group {
            return Err(EncodeError::GroupTooLarge {
                bytes,
                max: self.max_group,
            });
        }
        let end = self.buffer.len();
        let mut at = self.start;
        while at < end {
            let length = u32::from_le_bytes([
                self.buffer[at],
                self.buffer[at + 1],
                self.buffer[at + 2],
                self.buffer[at + 3],
            ]) as usize;
            let next = at + frame_len(length);
            if next < end {
                self.buffer[at + 8] |= CONTINUES;
            }
            let crc = checksum(
                &self.buffer[at..at + 4],
                &self.buffer[at + 8..at + HEADER_LEN + length],
            );
            self.buffer[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
            at = next;
        }
        self.finished = true;
        Ok((self.records, bytes))
    }
}

impl Drop for GroupEncoder<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.buffer.truncate(self.start);
        }
    }
}

/// Flags the record at the start of `bytes` (a whole, encoded record) as the first of a write
/// made after an fdatasync, and refreshes its checksum. Bytes too short to hold a record are
/// left alone.
pub fn mark_after_sync(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let Some(end) = HEADER_LEN
        .checked_add(length)
        .filter(|end| *end <= bytes.len())
    else {
        return;
    };
    bytes[8] |= AFTER_SYNC;
    let crc = checksum(&bytes[..4], &bytes[8..end]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes a single record as a group of one.
pub fn encode_one<T: Serialize>(
    buffer: &mut Vec<u8>,
    record_type: RecordType,
    value: &T,
) -> Result<usize, EncodeError> {
    let mut group = GroupEncoder::new(buffer, MAX_PAYLOAD, usize::MAX);
    group.push(record_type, value)?;
    group.finish().map(|(_, bytes)| bytes)
}

/// Where group boundaries fall in a run of whole records: the length of the longest prefix
/// of `bytes` that ends on a group boundary and is at most `room` bytes.
pub fn group_prefix(bytes: &[u8], room: usize) -> usize {
    group_prefix_counted(bytes, room).0
}

/// [`group_prefix`], with the number of records in that prefix (the LSNs it takes), found
/// in the same walk over the frame headers.
pub fn group_prefix_counted(bytes: &[u8], room: usize) -> (usize, u64) {
    let mut at = 0;
    let mut records = 0;
    let mut boundary = (0, 0);
    while at + HEADER_LEN <= bytes.len() {
        let length =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let next = at + frame_len(length);
        if next > room || next > bytes.len() {
            break;
        }
        records += 1;
        if bytes[at + 8] & CONTINUES == 0 {
            boundary = (next, records);
        }
        at = next;
    }
    boundary
}

// ---------------------------------------------------------------- payloads

/// A run of consecutive task ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// The first id.
    pub first: u64,
    /// How many ids (at least 1).
    pub count: u32,
}

impl IdRange {
    /// The ids in the range.
    pub fn ids(self) -> impl Iterator<Item = u64> {
        (0..u64::from(self.count)).map(move |i| self.first.saturating_add(i))
    }

    /// The last id.
    pub fn last(self) -> u64 {
        self.first
            .saturating_add(u64::from(self.count.max(1)))
            .saturating_sub(1)
    }
}

/// Appends `id` to a list of ranges, extending the last range when it is the next id.
pub fn push_id(ranges: &mut Vec<IdRange>, id: u64) {
    if let Some(last) = ranges.last_mut()
        && last.count < u32::MAX
        && last.first.checked_add(u64::from(last.count)) == Some(id)
    {
        last.count += 1;
        return;
    }
    ranges.push(IdRange {
        first: id,
        count: 1,
    });
}

/// A task spec as logged: the kind by name (so registries may change order between runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRecord<'a> {
    /// The kind's name.
    pub kind: Cow<'a, str>,
    /// The kind's numbers.
    pub numbers: [u64; 2],
    /// The kind's text (echo text, exec argv joined with NUL, custom text).
    pub text: Option<Cow<'a, str>>,
    /// The `timeout=`, ns; 0 for none.
    pub timeout_ns: u64,
}

impl SpecRecord<'_> {
    /// An owned copy.
    pub fn into_owned(self) -> SpecRecord<'static> {
        SpecRecord {
            kind: Cow::Owned(self.kind.into_owned()),
            numbers: self.numbers,
            text: self.text.map(|t| Cow::Owned(t.into_owned())),
            timeout_ns: self.timeout_ns,
        }
    }
}

/// Last record of a segment the writer closed to go on in the next one (format 4 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEnd {
    /// The segment's sequence number.
    pub segment: u64,
}

/// Bytes a [`SegmentEnd`] record takes at most: the writer keeps this much of every segment
/// free for it.
pub const SEGMENT_END_LEN: usize = frame_len(10);

/// First record of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The segment's sequence number (also in its file name).
    pub segment: u64,
    /// When it was created.
    pub created_unix_us: u64,
    /// The file's size when it was created, whole (format 2 on; 0 in format 1): a segment
    /// is renamed into place only once written whole, so a shorter file was cut short.
    pub size: u64,
    /// The log it belongs to (format 3 on; 0 before): an id drawn when the data
    /// directory's log began and kept by every segment and checkpoint after, so a segment
    /// copied in from another directory is told apart.
    #[serde(with = "log_id_form")]
    pub log_id: u64,
}

/// A log id on disk as a number, in JSON (`wal dump --json`) as the 16 hex digits the
/// messages and the text dump show: as a JSON number it is beyond what many JSON readers
/// hold exactly (2^53).
mod log_id_form {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&format!("{id:016x}"))
        } else {
            serializer.serialize_u64(*id)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
        } else {
            u64::deserialize(deserializer)
        }
    }
}

/// [`SegmentHeader`] as format 2 wrote it, without the log id.
#[derive(Debug, Clone, Copy, Deserialize)]
struct SegmentHeaderV2 {
    version: u32,
    segment: u64,
    created_unix_us: u64,
    size: u64,
}

/// [`SegmentHeader`] as format 1 wrote it, without the size.
#[derive(Debug, Clone, Copy, Deserialize)]
struct SegmentHeaderV1 {
    version: u32,
    segment: u64,
    created_unix_us: u64,
}

impl From<SegmentHeaderV2> for SegmentHeader {
    fn from(v2: SegmentHeaderV2) -> Self {
        SegmentHeader {
            version: v2.version,
            segment: v2.segment,
            created_unix_us: v2.created_unix_us,
            size: v2.size,
            log_id: 0,
        }
    }
}

impl From<SegmentHeaderV1> for SegmentHeader {
    fn from(v1: SegmentHeaderV1) -> Self {
        SegmentHeader {
            version: v1.version,
            segment: v1.segment,
            created_unix_us: v1.created_unix_us,
            size: 0,
            log_id: 0,
        }
    }
}

impl SegmentHeader {
    fn decode(what: &'static str, bytes: &[u8]) -> Result<SegmentHeader, CodecError> {
        let current = codec::decode(what, bytes);
        let v2 = or_older::<_, SegmentHeaderV2>(what, bytes, current);
        or_older::<_, SegmentHeaderV1>(what, bytes, v2)
    }
}

/// `current` (a record decoded as this version writes it), or else `bytes` decoded as an
/// older format's `Old`, its missing fields at their "not said" values; the error is the
/// current form's.
fn or_older<T, Old: serde::de::DeserializeOwned + Into<T>>(
    what: &'static str,
    bytes: &[u8],
    current: Result<T, CodecError>,
) -> Result<T, CodecError> {
    current.or_else(|error| {
        codec::decode::<Old>(what, bytes)
            .map(Into::into)
            .map_err(|_| error)
    })
}

/// Tasks accepted with the same spec (one line of a submission with its copies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted<'a> {
    /// Their ids.
    pub ids: Cow<'a, [IdRange]>,
    /// What they run.
    pub spec: SpecRecord<'a>,
    /// The submission's idempotency key.
    pub key: Option<Cow<'a, str>>,
    /// Their run number (1).
    pub attempt: u32,
    /// When they were accepted.
    pub submitted_unix_us: u64,
    /// With a key: a print of the whole submission, so that the key tells the same request
    /// from other work also after a restart (format 5 on; `None` before).
    pub request: Option<KeyRequest>,
}

/// A print of a submission made under an idempotency key: a stable hash of its lines (each
/// spec with its copies) and the number of tasks it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    /// FNV-1a of the lines (see `Node`'s request print); in JSON as 16 hex digits.
    #[serde(with = "log_id_form")]
    pub hash: u64,
    /// Tasks asked for.
    pub tasks: u64,
}

/// [`Accepted`] as formats 1 to 4 wrote it, without the request print.
#[derive(Debug, Clone, Deserialize)]
struct AcceptedV4<'a> {
    ids: Cow<'a, [IdRange]>,
    spec: SpecRecord<'a>,
    key: Option<Cow<'a, str>>,
    attempt: u32,
    submitted_unix_us: u64,
}

impl<'a> From<AcceptedV4<'a>> for Accepted<'a> {
    fn from(v4: AcceptedV4<'a>) -> Self {
        Accepted {
            ids: v4.ids,
            spec: v4.spec,
            key: v4.key,
            attempt: v4.attempt,
            submitted_unix_us: v4.submitted_unix_us,
            request: None,
        }
    }
}

/// A task began a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The task.
    pub id: u64,
    /// Its run number.
    pub attempt: u32,
    /// When.
    pub unix_us: u64,
}

/// What a finished task produced, cut to a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputRecord<'a> {
    /// Nothing.
    None,
    /// A number.
    Number(u64),
    /// Text, cut to [`OUTPUT_SUMMARY`] bytes.
    Text(Cow<'a, str>),
    /// A process's exit and the start of its output.
    Process {
        /// Exit code.
        exit_code: Option<i32>,
        /// Signal that ended it.
        signal: Option<i32>,
        /// Start of standard output.
        stdout: Cow<'a, str>,
        /// Start of standard error.
        stderr: Cow<'a, str>,
        /// Standard output bytes not kept.
        stdout_truncated: u64,
        /// Standard error bytes not kept.
        stderr_truncated: u64,
    },
}

/// Bytes of text output, process output or error message kept in a finished record.
pub const OUTPUT_SUMMARY: usize = 4096;

/// `text` cut to at most `max` bytes at a character boundary, and the bytes cut.
pub fn summary(text: &str, max: usize) -> (&str, u64) {
    if text.len() <= max {
        return (text, 0);
    }
    let end = crate::runtime::units::floor_char_boundary(text, max);
    (&text[..end], (text.len() - end) as u64)
}

/// A task finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished<'a> {
    /// The task.
    pub id: u64,
    /// The run that finished.
    pub attempt: u32,
    /// Its final state.
    pub state: TaskState,
    /// The worker that ran it last.
    pub worker: Option<u16>,
    /// When it first ran.
    pub started_unix_us: Option<u64>,
    /// When it finished.
    pub finished_unix_us: u64,
    /// Time on workers, µs.
    pub run_us: u64,
    /// Its output, summarised.
    pub output: OutputRecord<'a>,
    /// Why it failed, summarised.
    pub error: Option<Cow<'a, str>>,
}

/// Someone asked to cancel a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    /// The task.
    pub id: u64,
    /// When.
    pub unix_us: u64,
}

/// First record of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBegin {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The checkpoint holds the state after every segment below this one.
    pub next_segment: u64,
    /// The highest task id handed out so far.
    pub max_id: u64,
    /// When it was written.
    pub created_unix_us: u64,
    /// The log it belongs to (format 3 on; 0 before), as [`SegmentHeader::log_id`].
    #[serde(with = "log_id_form")]
    pub log_id: u64,
}

/// [`CheckpointBegin`] as formats 1 and 2 wrote it, without the log id.
#[derive(Debug, Clone, Copy, Deserialize)]
struct CheckpointBeginV2 {
    version: u32,
    next_segment: u64,
    max_id: u64,
    created_unix_us: u64,
}

impl From<CheckpointBeginV2> for CheckpointBegin {
    fn from(v2: CheckpointBeginV2) -> Self {
        CheckpointBegin {
            version: v2.version,
            next_segment: v2.next_segment,
            max_id: v2.max_id,
            created_unix_us: v2.created_unix_us,
            log_id: 0,
        }
    }
}

impl CheckpointBegin {
    fn decode(what: &'static str, bytes: &[u8]) -> Result<CheckpointBegin, CodecError> {
        or_older::<_, CheckpointBeginV2>(what, bytes, codec::decode(what, bytes))
    }
}

/// A task in flight at the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointTask<'a> {
    /// The task.
    pub id: u64,
    /// What it runs.
    pub spec: SpecRecord<'a>,
    /// Its current run number.
    pub attempt: u32,
    /// Whether that run began.
    pub started: bool,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// When it was accepted.
    pub submitted_unix_us: u64,
}

/// A finished task kept for the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFinished<'a> {
    /// What it ran.
    pub spec: SpecRecord<'a>,
    /// When it was accepted.
    pub submitted_unix_us: u64,
    /// How it ended.
    pub outcome: Finished<'a>,
}

/// An idempotency key and the ids it produced (long lists take several records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointKey<'a> {
    /// The key.
    pub key: Cow<'a, str>,
    /// Its ids.
    pub ids: Cow<'a, [IdRange]>,
    /// The print of its request, when known (format 5 on; `None` before).
    pub request: Option<KeyRequest>,
}

/// [`CheckpointKey`] as formats 1 to 4 wrote it, without the request print.
#[derive(Debug, Clone, Deserialize)]
struct CheckpointKeyV4<'a> {
    key: Cow<'a, str>,
    ids: Cow<'a, [IdRange]>,
}

impl<'a> From<CheckpointKeyV4<'a>> for CheckpointKey<'a> {
    fn from(v4: CheckpointKeyV4<'a>) -> Self {
        CheckpointKey {
            key: v4.key,
            ids: v4.ids,
            request: None,
        }
    }
}

/// Last record of a checkpoint: the counts, checked on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointEnd {
    /// Tasks in flight.
    pub live: u64,
    /// Finished tasks.
    pub finished: u64,
    /// Key records.
    pub keys: u64,
}

/// A decoded record of any type (for recovery, `wal dump` and tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// See [`SegmentHeader`].
    Segment(SegmentHeader),
    /// See [`Accepted`].
    Accepted(Accepted<'static>),
    /// See [`Started`].
    Started(Started),
    /// See [`Finished`].
    Finished(Finished<'static>),
    /// See [`Cancelled`].
    Cancelled(Cancelled),
    /// See [`SegmentEnd`].
    SegmentEnd(SegmentEnd),
    /// See [`CheckpointBegin`].
    CheckpointBegin(CheckpointBegin),
    /// See [`CheckpointTask`].
    CheckpointTask(CheckpointTask<'static>),
    /// See [`CheckpointFinished`].
    CheckpointFinished(CheckpointFinished<'static>),
    /// See [`CheckpointKey`].
    CheckpointKey(CheckpointKey<'static>),
    /// See [`CheckpointEnd`].
    CheckpointEnd(CheckpointEnd),
}

impl Record {
    /// Decodes a frame's payload by its type.
    pub fn decode(frame: &Frame<'_>) -> Result<Record, CodecError> {
        let what = frame.record_type.name();
        let bytes = frame.payload;
        Ok(match frame.record_type {
            RecordType::Segment => Record::Segment(SegmentHeader::decode(what, bytes)?),
            RecordType::Accepted => Record::Accepted(or_older::<_, AcceptedV4<'_>>(
                what,
                bytes,
                codec::decode(what, bytes),
            )?),
            RecordType::Started => Record::Started(codec::decode(what, bytes)?),
            RecordType::Finished => Record::Finished(codec::decode(what, bytes)?),
            RecordType::Cancelled => Record::Cancelled(codec::decode(what, bytes)?),
            RecordType::SegmentEnd => Record::SegmentEnd(codec::decode(what, bytes)?),
            RecordType::CheckpointBegin => {
                Record::CheckpointBegin(CheckpointBegin::decode(what, bytes)?)
            }
            RecordType::CheckpointTask => Record::CheckpointTask(codec::decode(what, bytes)?),
            RecordType::CheckpointFinished => {
                Record::CheckpointFinished(codec::decode(what, bytes)?)
            }
            RecordType::CheckpointKey => Record::CheckpointKey(or_older::<_, CheckpointKeyV4<'_>>(
                what,
                bytes,
                codec::decode(what, bytes),
            )?),
            RecordType::CheckpointEnd => Record::CheckpointEnd(codec::decode(what, bytes)?),
        })
    }

    /// The record's type.
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Segment(_) => RecordType::Segment,
            Record::Accepted(_) => RecordType::Accepted,
            Record::Started(_) => RecordType::Started,
            Record::Finished(_) => RecordType::Finished,
            Record::Cancelled(_) => RecordType::Cancelled,
            Record::SegmentEnd(_) => RecordType::SegmentEnd,
            Record::CheckpointBegin(_) => RecordType::CheckpointBegin,
            Record::CheckpointTask(_) => RecordType::CheckpointTask,
            Record::CheckpointFinished(_) => RecordType::CheckpointFinished,
            Record::CheckpointKey(_) => RecordType::CheckpointKey,
            Record::CheckpointEnd(_) => RecordType::CheckpointEnd,
        }
    }

    /// Appends this record to a group.
    pub fn push_to(&self, group: &mut GroupEncoder<'_>) -> Result<(), EncodeError> {
        let record_type = self.record_type();
        match self {
            Record::Segment(v) => group.push(record_type, v),
            Record::Accepted(v) => group.push(record_type, v),
            Record::Started(v) => group.push(record_type, v),
            Record::Finished(v) => group.push(record_type, v),
            Record::Cancelled(v) => group.push(record_type, v),
            Record::SegmentEnd(v) => group.push(record_type, v),
            Record::CheckpointBegin(v) => group.push(record_type, v),
            Record::CheckpointTask(v) => group.push(record_type, v),
            Record::CheckpointFinished(v) => group.push(record_type, v),
            Record::CheckpointKey(v) => group.push(record_type, v),
            Record::CheckpointEnd(v) => group.push(record_type, v),
        }
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    //! proptest strategies for records.
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        ".{0,40}"
    }

    fn cow() -> impl Strategy<Value = Cow<'static, str>> {
        text().prop_map(Cow::Owned)
    }

    fn key_request() -> impl Strategy<Value = KeyRequest> {
        (any::<u64>(), any::<u64>()).prop_map(|(hash, tasks)| KeyRequest { hash, tasks })
    }

    fn ranges() -> impl Strategy<Value = Cow<'static, [IdRange]>> {
        proptest::collection::vec(
            (any::<u64>(), 1u32..1000).prop_map(|(first, count)| IdRange { first, count }),
            0..5,
        )
        .prop_map(Cow::Owned)
    }

    fn spec() -> impl Strategy<Value = SpecRecord<'static>> {
        (
            cow(),
            any::<[u64; 2]>(),
            proptest::option::of(cow()),
            any::<u64>(),
        )
            .prop_map(|(kind, numbers, text, timeout_ns)| SpecRecord {
                kind,
                numbers,
                text,
                timeout_ns,
            })
    }

    fn state() -> impl Strategy<Value = TaskState> {
        prop::sample::select(TaskState::ALL.to_vec())
    }

    fn output() -> impl Strategy<Value = OutputRecord<'static>> {
        prop_oneof![
            Just(OutputRecord::None),
            any::<u64>().prop_map(OutputRecord::Number),
            cow().prop_map(OutputRecord::Text),
            (
                any::<Option<i32>>(),
                any::<Option<i32>>(),
                cow(),
                cow(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(
                    |(exit_code, signal, stdout, stderr, stdout_truncated, stderr_truncated)| {
                        OutputRecord::Process {
                            exit_code,
                            signal,
                            stdout,
                            stderr,
                            stdout_truncated,
                            stderr_truncated,
                        }
                    }
                ),
        ]
    }

    fn finished() -> impl Strategy<Value = Finished<'static>> {
        (
            (any::<u64>(), any::<u32>(), state(), any::<Option<u16>>()),
            (
                any::<Option<u64>>(),
                any::<u64>(),
                any::<u64>(),
                output(),
                proptest::option::of(cow()),
            ),
        )
            .prop_map(
                |((id, attempt, state, worker), (started, finished, run_us, output, error))| {
                    Finished {
                        id,
                        attempt,
                        state,
                        worker,
                        started_unix_us: started,
                        finished_unix_us: finished,
                        run_us,
                        output,
                        error,
                    }
                },
            )
    }

    /// Any record.
    pub fn record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(version, segment, at, size, log_id)| {
                    Record::Segment(SegmentHeader {
                        version,
                        segment,
                        created_unix_us: at,
                        size,
                        log_id,
                    })
                }),
            (
                ranges(),
                spec(),
                proptest::option::of(cow()),
                any::<u32>(),
                any::<u64>(),
                proptest::option::of(key_request())
            )
                .prop_map(|(ids, spec, key, attempt, at, request)| {
                    Record::Accepted(Accepted {
                        ids,
                        spec,
                        key,
                        attempt,
                        submitted_unix_us: at,
                        request,
                    })
                }),
            (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(id, attempt, unix_us)| {
                Record::Started(Started {
                    id,
                    attempt,
                    unix_us,
                })
            }),
            finished().prop_map(Record::Finished),
            (any::<u64>(), any::<u64>())
                .prop_map(|(id, unix_us)| Record::Cancelled(Cancelled { id, unix_us })),
            any::<u64>().prop_map(|segment| Record::SegmentEnd(SegmentEnd { segment })),
            (
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(version, next_segment, max_id, at, log_id)| {
                    Record::CheckpointBegin(CheckpointBegin {
                        version,
                        next_segment,
                        max_id,
                        created_unix_us: at,
                        log_id,
                    })
                }),
            (
                any::<u64>(),
                spec(),
                any::<u32>(),
                any::<bool>(),
                any::<bool>(),
                any::<u64>()
            )
                .prop_map(|(id, spec, attempt, started, cancel_requested, at)| {
                    Record::CheckpointTask(CheckpointTask {
                        id,
                        spec,
                        attempt,
                        started,
                        cancel_requested,
                        submitted_unix_us: at,
                    })
                }),
            (spec(), any::<u64>(), finished()).prop_map(|(spec, at, outcome)| {
                Record::CheckpointFinished(CheckpointFinished {
                    spec,
                    submitted_unix_us: at,
                    outcome,
                })
            }),
            (cow(), ranges(), proptest::option::of(key_request())).prop_map(
                |(key, ids, request)| Record::CheckpointKey(CheckpointKey { key, ids, request })
            ),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(live, finished, keys)| {
                Record::CheckpointEnd(CheckpointEnd {
                    live,
                    finished,
                    keys,
                })
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::record;
    use super::*;
    use proptest::prelude::*;

    fn cancelled(id: u64) -> Record {
        Record::Cancelled(Cancelled { id, unix_us: 7 })
    }

    fn encode_group(records: &[Record]) -> Vec<u8> {
        let mut buffer = Vec::new();
        let mut group = GroupEncoder::new(&mut buffer, MAX_PAYLOAD, usize::MAX);
        for record in records {
            record.push_to(&mut group).expect("encodes");
        }
        group.finish().expect("fits");
        buffer
    }

    /// The records a group written by `write` (records of an older format) reads back as.
    fn read_back(write: impl FnOnce(&mut GroupEncoder<'_>)) -> Vec<Record> {
        let mut bytes = Vec::new();
        let mut group = GroupEncoder::new(&mut bytes, MAX_PAYLOAD, usize::MAX);
        write(&mut group);
        group.finish().expect("fits");
        read_all(&bytes).into_iter().map(|(r, _)| r).collect()
    }

    fn read_all(bytes: &[u8]) -> Vec<(Record, bool)> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(frame) = read_frame(bytes, at, MAX_PAYLOAD).expect("valid") {
            out.push((Record::decode(&frame).expect("decodes"), frame.continues));
            at += frame.len;
        }
        out
    }

    #[test]
    fn groups_flag_every_record_but_the_last() {
        let bytes = encode_group(&[cancelled(1), cancelled(2), cancelled(3)]);
        assert_eq!(bytes.len() % ALIGN, 0);
        let read = read_all(&bytes);
        assert_eq!(
            read,
            vec![
                (cancelled(1), true),
                (cancelled(2), true),
                (cancelled(3), false)
            ]
        );
        assert_eq!(group_prefix(&bytes, bytes.len()), bytes.len());
        assert_eq!(group_prefix(&bytes, bytes.len() - 1), 0, "groups are whole");
    }

    #[test]
    fn a_segment_end_record_fits_the_room_kept_for_it() {
        let bytes = encode_group(&[Record::SegmentEnd(SegmentEnd { segment: u64::MAX })]);
        assert!(bytes.len() <= SEGMENT_END_LEN, "{} bytes", bytes.len());
    }

    #[test]
    fn a_log_id_is_hex_in_json_and_a_number_on_disk() {
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            segment: 1,
            created_unix_us: 2,
            size: 3,
            log_id: 0x16b7_2a91_37a3_3ff4,
        };
        let json = serde_json::to_string(&header).expect("json");
        assert!(json.contains(r#""log_id":"16b72a9137a33ff4""#), "{json}");
        let back: SegmentHeader = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, header);
        let bytes = codec::encode("header", &header).expect("encodes");
        assert_eq!(
            SegmentHeader::decode("header", &bytes).expect("decodes"),
            header
        );
    }

    #[test]
    fn format_2_headers_read_with_an_unknown_log_id() {
        #[derive(Serialize)]
        struct SegmentV2 {
            version: u32,
            segment: u64,
            created_unix_us: u64,
            size: u64,
        }
        #[derive(Serialize)]
        struct BeginV2 {
            version: u32,
            next_segment: u64,
            max_id: u64,
            created_unix_us: u64,
        }
        let records = read_back(|group| {
            group
                .push(
                    RecordType::Segment,
                    &SegmentV2 {
                        version: 2,
                        segment: 7,
                        created_unix_us: 99,
                        size: 4096,
                    },
                )
                .expect("encodes");
            group
                .push(
                    RecordType::CheckpointBegin,
                    &BeginV2 {
                        version: 2,
                        next_segment: 7,
                        max_id: 12,
                        created_unix_us: 99,
                    },
                )
                .expect("encodes");
        });
        assert_eq!(
            records,
            vec![
                Record::Segment(SegmentHeader {
                    version: 2,
                    segment: 7,
                    created_unix_us: 99,
                    size: 4096,
                    log_id: 0,
                }),
                Record::CheckpointBegin(CheckpointBegin {
                    version: 2,
                    next_segment: 7,
                    max_id: 12,
                    created_unix_us: 99,
                    log_id: 0,
                }),
            ]
        );
    }

    #[test]
    fn format_4_accepted_and_key_records_read_without_a_request_print() {
        #[derive(Serialize)]
        struct AcceptedV4Form<'a> {
            ids: Cow<'a, [IdRange]>,
            spec: SpecRecord<'a>,
            key: Option<Cow<'a, str>>,
            attempt: u32,
            submitted_unix_us: u64,
        }
        #[derive(Serialize)]
        struct KeyV4Form<'a> {
            key: Cow<'a, str>,
            ids: Cow<'a, [IdRange]>,
        }
        let ids = vec![IdRange { first: 4, count: 3 }];
        let spec = SpecRecord {
            kind: Cow::Borrowed("fib"),
            numbers: [5, 0],
            text: None,
            timeout_ns: 0,
        };
        let records = read_back(|group| {
            group
                .push(
                    RecordType::Accepted,
                    &AcceptedV4Form {
                        ids: Cow::Borrowed(&ids),
                        spec: spec.clone(),
                        key: Some(Cow::Borrowed("k1")),
                        attempt: 1,
                        submitted_unix_us: 99,
                    },
                )
                .expect("encodes");
            group
                .push(
                    RecordType::CheckpointKey,
                    &KeyV4Form {
                        key: Cow::Borrowed("k1"),
                        ids: Cow::Borrowed(&ids),
                    },
                )
                .expect("encodes");
        });
        assert_eq!(
            records,
            vec![
                Record::Accepted(Accepted {
                    ids: Cow::Owned(ids.clone()),
                    spec: spec.into_owned(),
                    key: Some(Cow::Owned("k1".into())),
                    attempt: 1,
                    submitted_unix_us: 99,
                    request: None,
                }),
                Record::CheckpointKey(CheckpointKey {
                    key: Cow::Owned("k1".into()),
                    ids: Cow::Owned(ids),
                    request: None,
                }),
            ]
        );
    }

    #[test]
    fn a_format_1_segment_header_reads_with_an_unknown_size() {
        #[derive(Serialize)]
        struct Written {
            version: u32,
            segment: u64,
            created_unix_us: u64,
        }
        let mut bytes = Vec::new();
        let mut group = GroupEncoder::new(&mut bytes, MAX_PAYLOAD, usize::MAX);
        group
            .push(
                RecordType::Segment,
                &Written {
                    version: 1,
                    segment: 7,
                    created_unix_us: 99,
                },
            )
            .expect("encodes");
        group.finish().expect("fits");
        let frame = read_frame(&bytes, 0, MAX_PAYLOAD)
            .expect("valid")
            .expect("frame");
        assert_eq!(
            Record::decode(&frame).expect("decodes"),
            Record::Segment(SegmentHeader {
                version: 1,
                segment: 7,
                created_unix_us: 99,
                size: 0,
                log_id: 0,
            })
        );
    }

    #[test]
    fn a_record_marked_after_a_sync_keeps_its_type_group_and_payload() {
        let mut bytes = encode_group(&[cancelled(1), cancelled(2)]);
        mark_after_sync(&mut bytes);
        let first = read_frame(&bytes, 0, MAX_PAYLOAD)
            .expect("valid checksum")
            .expect("frame");
        assert!(first.after_sync && first.continues);
        assert_eq!(first.record_type, RecordType::Cancelled);
        assert_eq!(
            Record::decode(&first).expect("decodes"),
            cancelled(1),
            "the payload is untouched"
        );
        let second = read_frame(&bytes, first.len, MAX_PAYLOAD)
            .expect("valid")
            .expect("frame");
        assert!(!second.after_sync && !second.continues);
        // Too short to hold a record: left alone.
        let mut short = [1u8; 4];
        mark_after_sync(&mut short);
        assert_eq!(short, [1; 4]);
    }

    #[test]
    fn group_prefix_stops_at_the_last_boundary_that_fits() {
        let mut bytes = encode_group(&[cancelled(1)]);
        let first = bytes.len();
        bytes.extend(encode_group(&[cancelled(2), cancelled(3)]));
        assert_eq!(group_prefix(&bytes, bytes.len() - 1), first);
        assert_eq!(group_prefix(&bytes, first - 1), 0);
        // With the records in the prefix: the LSNs the writer publishes for it.
        assert_eq!(group_prefix_counted(&bytes, bytes.len()), (bytes.len(), 3));
        assert_eq!(group_prefix_counted(&bytes, bytes.len() - 1), (first, 1));
        assert_eq!(group_prefix_counted(&bytes, first - 1), (0, 0));
    }

    #[test]
    fn a_dropped_encoder_leaves_the_buffer_as_it_was() {
        let mut buffer = vec![1, 2, 3];
        {
            let mut group = GroupEncoder::new(&mut buffer, MAX_PAYLOAD, usize::MAX);
            cancelled(1).push_to(&mut group).expect("encodes");
        }
        assert_eq!(buffer, vec![1, 2, 3]);
    }

    #[test]
    fn oversized_records_and_groups_are_refused_and_removed() {
        let mut buffer = Vec::new();
        let mut group = GroupEncoder::new(&mut buffer, 16, usize::MAX);
        let big = Record::CheckpointKey(CheckpointKey {
            key: Cow::Owned("k".repeat(100)),
            ids: Cow::Owned(Vec::new()),
            request: None,
        });
        assert!(matches!(
            big.push_to(&mut group),
            Err(EncodeError::TooLarge { max: 16, .. })
        ));
        assert_eq!(group.bytes(), 0);
        drop(group);
        let mut group = GroupEncoder::new(&mut buffer, MAX_PAYLOAD, 20);
        cancelled(1).push_to(&mut group).expect("encodes");
        cancelled(2).push_to(&mut group).expect("encodes");
        assert!(matches!(
            group.finish(),
            Err(EncodeError::GroupTooLarge { max: 20, .. })
        ));
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_4_gib_length_is_refused_before_anything_is_read() {
        let mut bytes = vec![0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 2];
        bytes.extend([7u8; 64]);
        assert_eq!(
            read_frame(&bytes, 0, MAX_PAYLOAD),
            Err(FrameError::TooLong {
                offset: 0,
                length: u64::from(u32::MAX),
                max: MAX_PAYLOAD
            })
        );
    }

    #[test]
    fn a_length_past_the_end_is_truncated_not_read() {
        let bytes = encode_group(&[cancelled(1)]);
        let cut = &bytes[..bytes.len() - 8];
        assert!(matches!(
            read_frame(cut, 0, MAX_PAYLOAD),
            Err(FrameError::Truncated { offset: 0, .. })
        ));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = encode_group(&[cancelled(1)]);
        let payload_end =
            HEADER_LEN + u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        for bit in 0..payload_end * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                read_frame(&damaged, 0, MAX_PAYLOAD).is_err(),
                "flipping bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn zero_header_is_the_end() {
        assert_eq!(read_frame(&[0; 64], 0, MAX_PAYLOAD), Ok(None));
        assert_eq!(read_frame(&[0; 3], 0, MAX_PAYLOAD), Ok(None));
        assert_eq!(read_frame(&[], 0, MAX_PAYLOAD), Ok(None));
        assert!(read_frame(&[0, 0, 1], 0, MAX_PAYLOAD).is_err());
    }

    #[test]
    fn summaries_cut_at_character_boundaries() {
        assert_eq!(summary("héllo", 2), ("h", 5));
        assert_eq!(summary("hello", 10), ("hello", 0));
    }

    #[test]
    fn id_ranges_merge_consecutive_ids() {
        let mut ranges = Vec::new();
        for id in [5, 6, 7, 9, 10] {
            push_id(&mut ranges, id);
        }
        assert_eq!(
            ranges,
            vec![
                IdRange { first: 5, count: 3 },
                IdRange { first: 9, count: 2 }
            ]
        );
        assert_eq!(ranges[0].ids().collect::<Vec<_>>(), vec![5, 6, 7]);
        assert_eq!(ranges[1].last(), 10);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_group_of_records_round_trips(records in proptest::collection::vec(record(), 1..6)) {
            let bytes = encode_group(&records);
            let read = read_all(&bytes);
            prop_assert_eq!(read.len(), records.len());
            for (index, ((got, continues), wanted)) in read.into_iter().zip(&records).enumerate() {
                prop_assert_eq!(&got, wanted);
                prop_assert_eq!(continues, index + 1 < records.len());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), offset in 0usize..600, max in 0usize..2048) {
            if let Ok(Some(frame)) = read_frame(&bytes, offset, max) {
                prop_assert!(frame.offset + HEADER_LEN + frame.payload.len() <= bytes.len());
                let _ = Record::decode(&frame);
            }
            let _ = group_prefix(&bytes, offset);
        }
    }
}
