//! File identity for the tailer: which file on disk is the one a checkpoint speaks of.
//!
//! A file is known by its `(device, inode)` pair plus two content checks:
//!
//! - the **fingerprint** `(len, hash)`: a hash of the first `len` bytes, where `len` is the
//!   smallest of the end of the first line, [`FINGERPRINT_MAX_BYTES`] and the file size when the
//!   fingerprint was first taken. `len` is stored, so a file whose first line was still being
//!   written when it was fingerprinted is checked later against the same prefix;
//! - the **marker**: a hash of the (up to) [`MARKER_BYTES`] bytes just before the committed
//!   offset, taken at every commit.
//!
//! Inode numbers alone are not enough: filesystems hand a freed inode number to the next file
//! created, and kubelet creates a new `0.log` right after renaming the old one away. Fluent Bit's
//! `in_tail` looks its database rows up by inode (`fluent/fluent-bit: plugins/in_tail/tail_sql.h`,
//! `SQL_GET_FILE`); Vector's Kubernetes source did the same until inode reuse made it resume a new
//! file at an old offset and skip its logs (vectordotdev/vector#1910, fixed by #1912 with content
//! checksums). A content check alone is not enough either: two files of one container can start
//! with the same line. Hence both, and the marker catches a file that was truncated and rewritten
//! with the same first line (copytruncate).
//!
//! Reads go through [`ReadAt`] (positional reads, `pread(2)`), so the checks never move a shared
//! file position and tests run on in-memory bytes. Nothing here allocates: buffers live on the
//! stack and are at most [`FINGERPRINT_MAX_BYTES`] long.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// Upper bound of a fingerprint's `len`: a first line longer than this is fingerprinted by its
/// first 1,024 bytes. CRI lines start with a timestamp and stream name, so 1 KiB tells files apart
/// and stays cheap to re-read at every restart.
pub const FINGERPRINT_MAX_BYTES: usize = 1024;

/// How many bytes before the committed offset the marker covers (fewer near the start of a file).
pub const MARKER_BYTES: usize = 32;

/// Positional read of a file or an in-memory buffer (`pread(2)` semantics: may return fewer
/// bytes than asked; `Ok(0)` is the end of the data).
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes starting at byte `off`, without moving any file position.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(off) else {
            return Ok(0);
        };
        let Some(rest) = self.get(start..) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, off)
    }
}

/// `(device, inode)`: which inode on which filesystem; only meaningful while the file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub inode: u64,
}

/// FNV-1a, 64 bits (Fowler, Noll, Vo; <http://www.isthe.com/chongo/tech/comp/fnv/>, also
/// IETF draft-eastlake-fnv).
///
/// Written out here rather than taken from `std::hash`: the values are persisted in the
/// checkpoint file, so the function must give the same result in every future release, and
/// `DefaultHasher` documents that its algorithm may change between Rust versions. FNV-1a is not
/// collision-resistant against a chosen input, which does not matter here: a collision would
/// also need the same device, inode and marker, and would only make a container's own file
/// resume at a wrong offset.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher that has seen no bytes.
    pub const fn new() -> Self {
        Fnv1a64(Self::OFFSET_BASIS)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(Self::PRIME);
        }
        self.0 = h;
    }

    /// The hash of all bytes fed so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

/// The persisted hash of `bytes` ([`Fnv1a64`]).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish()
}

/// The head of a file: how many leading bytes were hashed, and their hash.
///
/// `len == 0` means "not taken yet" (the file was empty): such a fingerprint matches any file,
/// which is harmless because the offset stored with it can only be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of leading bytes hashed, at most [`FINGERPRINT_MAX_BYTES`].
    pub len: u32,
    /// [`hash`] of those bytes; a 16-digit hex string in JSON (see [`hex_u64`]).
    #[serde(with = "hex_u64")]
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of a file that was still empty.
    pub const EMPTY: Fingerprint = Fingerprint {
        len: 0,
        hash: Fnv1a64::OFFSET_BASIS,
    };

    /// Whether the head was hashed (the file held at least one byte when it was taken).
    pub fn is_taken(&self) -> bool {
        self.len > 0
    }

    /// Whether `len` is in range; a checkpoint file with a longer one was not written by kinsight.
    pub fn is_valid(&self) -> bool {
        usize::try_from(self.len).is_ok_and(|len| len <= FINGERPRINT_MAX_BYTES)
    }
}

/// Takes the fingerprint of `file`, whose size at this first read is `size`.
///
/// Reads at most [`FINGERPRINT_MAX_BYTES`] bytes. A file that is shorter than `size` by the time
/// it is read (truncated meanwhile) is fingerprinted over what could be read. Returns
/// [`Fingerprint::EMPTY`] for an empty file; the caller takes it again once the file has data.
pub fn fingerprint<R: ReadAt + ?Sized>(file: &R, size: u64) -> io::Result<Fingerprint> {
    let mut buf = [0u8; FINGERPRINT_MAX_BYTES];
    let want = usize::try_from(size).map_or(FINGERPRINT_MAX_BYTES, |s| s.min(FINGERPRINT_MAX_BYTES));
    let n = read_full_at(file, &mut buf[..want], 0)?;
    let head = &buf[..n];
    // The newline belongs to the first line: "end of the first line" is the offset after it.
    let len = head.iter().position(|&b| b == b'\n').map_or(n, |i| i + 1);
    Ok(Fingerprint {
        // Cannot saturate: len <= FINGERPRINT_MAX_BYTES.
        len: u32::try_from(len).unwrap_or(u32::MAX),
        hash: hash(&head[..len]),
    })
}

/// Whether the first `fp.len` bytes of `file` still hash to `fp.hash`. A file now shorter than
/// `fp.len`, or an out-of-range `len`, does not match.
pub fn head_matches<R: ReadAt + ?Sized>(file: &R, fp: &Fingerprint) -> io::Result<bool> {
    if !fp.is_valid() {
        return Ok(false);
    }
    let mut buf = [0u8; FINGERPRINT_MAX_BYTES];
    let len = fp.len as usize; // is_valid: at most FINGERPRINT_MAX_BYTES
    let n = read_full_at(file, &mut buf[..len], 0)?;
    Ok(n == len && hash(&buf[..len]) == fp.hash)
}

/// The marker of `offset`: the [`hash`] of the up to [`MARKER_BYTES`] bytes before it (all bytes
/// before it when `offset < 32`, so the marker of offset 0 is the hash of nothing).
///
/// `None` when the file holds fewer than `offset` bytes: no marker can match then.
pub fn marker<R: ReadAt + ?Sized>(file: &R, offset: u64) -> io::Result<Option<u64>> {
    let mut buf = [0u8; MARKER_BYTES];
    let want = usize::try_from(offset).map_or(MARKER_BYTES, |o| o.min(MARKER_BYTES));
    let start = offset - want as u64;
    let n = read_full_at(file, &mut buf[..want], start)?;
    Ok((n == want).then(|| hash(&buf[..want])))
}

/// The marker of an offset from the bytes just before it, when the caller still holds them:
/// `before` must end at the offset; only its last [`MARKER_BYTES`] bytes count. Equal to
/// [`marker`] when `before` holds at least 32 bytes or starts at offset 0.
pub fn marker_of(before: &[u8]) -> u64 {
    hash(&before[before.len().saturating_sub(MARKER_BYTES)..])
}

/// What a checkpoint remembers about a file, enough to recognise it after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Device and inode when the checkpoint was written.
    pub key: FileKey,
    /// The file's head.
    pub fingerprint: Fingerprint,
    /// The committed offset.
    pub offset: u64,
    /// [`marker`] of `offset`.
    pub marker: u64,
}

/// Why a file is not the one a checkpoint speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Another filesystem.
    Device,
    /// Another inode.
    Inode,
    /// Same inode, different first bytes: the inode number was reused by a new file.
    Head,
    /// Same inode and head, but the file is now shorter than the committed offset (truncated).
    Truncated,
    /// Same inode and head, different bytes before the committed offset: rewritten in place.
    Marker,
}

impl Mismatch {
    /// A short, bounded label for counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Mismatch::Device => "device",
            Mismatch::Inode => "inode",
            Mismatch::Head => "head",
            Mismatch::Truncated => "truncated",
            Mismatch::Marker => "marker",
        }
    }
}

/// The outcome of [`matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The file is the checkpointed one: resume at the stored offset.
    Same,
    /// It is not: treat the file as new (read it from offset 0).
    Different(Mismatch),
}

/// Whether `file`, found with device and inode `key`, is the file `stored` describes: device,
/// inode, head hash and marker must all match.
///
/// A fingerprint that was not taken (the file was empty at the checkpoint, so the offset is 0)
/// is not checked.
pub fn matches<R: ReadAt + ?Sized>(stored: &Stored, key: FileKey, file: &R) -> io::Result<Verdict> {
    if stored.key.dev != key.dev {
        return Ok(Verdict::Different(Mismatch::Device));
    }
    if stored.key.inode != key.inode {
        return Ok(Verdict::Different(Mismatch::Inode));
    }
    if stored.fingerprint.is_taken() && !head_matches(file, &stored.fingerprint)? {
        return Ok(Verdict::Different(Mismatch::Head));
    }
    Ok(match marker(file, stored.offset)? {
        None => Verdict::Different(Mismatch::Truncated),
        Some(m) if m == stored.marker => Verdict::Same,
        Some(_) => Verdict::Different(Mismatch::Marker),
    })
}

/// Whether a decompressed stream (a kubelet `.gz` twin of a rotated file, decompressed by the
/// caller) starts with the bytes `fp` was taken from. Consumes at most `fp.len` bytes.
pub fn stream_head_matches(decompressed: &mut dyn Read, fp: &Fingerprint) -> io::Result<bool> {
    if !fp.is_valid() {
        return Ok(false);
    }
    let mut buf = [0u8; FINGERPRINT_MAX_BYTES];
    let len = fp.len as usize; // is_valid: at most FINGERPRINT_MAX_BYTES
    let n = read_full(decompressed, &mut buf[..len])?;
    Ok(n == len && hash(&buf[..len]) == fp.hash)
}

/// Whether a decompressed twin is the checkpointed file: its head matches `stored.fingerprint`
/// and the bytes before `stored.offset` match `stored.marker`. Device and inode are not checked
/// (the twin is another file).
///
/// Consumes exactly `max(stored.offset, fp.len)` bytes of the stream when they are there. So when
/// this returns `true` and `stored.offset >= fp.len` (always the case once the first line was
/// committed), the stream is positioned at the checkpointed offset and the caller reads on from
/// it; otherwise the caller starts a new decoder.
pub fn twin_matches(decompressed: &mut dyn Read, stored: &Stored) -> io::Result<bool> {
    let fp = &stored.fingerprint;
    if !fp.is_valid() {
        return Ok(false);
    }
    let head_len = u64::from(fp.len);
    let end = stored.offset.max(head_len);
    let mut head = Fnv1a64::new();
    // The last MARKER_BYTES bytes before `stored.offset`, right-aligned in `window`.
    let mut window = [0u8; MARKER_BYTES];
    let mut chunk = [0u8; 8192];
    let mut pos = 0u64;
    while pos < end {
        let want = usize::try_from(end - pos).map_or(chunk.len(), |r| r.min(chunk.len()));
        let n = match decompressed.read(&mut chunk[..want]) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let bytes = &chunk[..n];
        let chunk_end = pos + n as u64;
        if pos < head_len {
            let k = usize::try_from(head_len - pos).map_or(n, |r| r.min(n));
            head.update(&bytes[..k]);
        }
        if pos < stored.offset {
            let k = usize::try_from(stored.offset - pos).map_or(n, |r| r.min(n));
            push_window(&mut window, &bytes[..k]);
        }
        pos = chunk_end;
    }
    let marker_len = usize::try_from(stored.offset).map_or(MARKER_BYTES, |o| o.min(MARKER_BYTES));
    Ok(head.finish() == fp.hash && hash(&window[MARKER_BYTES - marker_len..]) == stored.marker)
}

/// Appends `bytes` to a right-aligned sliding window of the last [`MARKER_BYTES`] bytes.
fn push_window(window: &mut [u8; MARKER_BYTES], bytes: &[u8]) {
    if bytes.len() >= MARKER_BYTES {
        window.copy_from_slice(&bytes[bytes.len() - MARKER_BYTES..]);
    } else {
        window.copy_within(bytes.len().., 0);
        window[MARKER_BYTES - bytes.len()..].copy_from_slice(bytes);
    }
}

/// Fills `buf` from `off` on, stopping early only at the end of the data.
fn read_full_at<R: ReadAt + ?Sized>(file: &R, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Fills `buf` from a stream, stopping early only at its end.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Serde for a `u64` hash as exactly 16 lowercase hex digits (`"00ab…"`).
///
/// A string, not a JSON number: tools that read JSON numbers as doubles (`jq`, JavaScript) would
/// silently round hashes above 2^53 when someone inspects or edits the checkpoint file. Reading
/// accepts 1 to 16 hex digits of either case.
pub mod hex_u64 {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    /// Writes `value` as 16 lowercase hex digits.
    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:016x}"))
    }

    /// Reads 1 to 16 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        // from_str_radix alone would also take a leading '+'.
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(D::Error::custom(format_args!(
                "expected 1 to 16 hex digits, got {text:?}"
            )));
        }
        u64::from_str_radix(&text, 16).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: FileKey = FileKey { dev: 2049, inode: 100 };

    fn stored_at(data: &[u8], offset: u64) -> Stored {
        Stored {
            key: KEY,
            fingerprint: fingerprint(data, data.len() as u64).unwrap(),
            offset,
            marker: marker(data, offset).unwrap().unwrap(),
        }
    }

    /// A reader that hands out one byte per call, to exercise the short-read loops.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    impl ReadAt for Trickle<'_> {
        fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
            let one = buf.len().min(1);
            self.0.read_at(&mut buf[..one], off)
        }
    }

    #[test]
    fn fnv1a64_reference_vectors() {
        // From the FNV reference page's test suite.
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn persisted_values_are_pinned() {
        // These values are in checkpoint files on nodes; a change here breaks every restart after
        // an upgrade.
        let line = b"2026-01-05T10:11:12.2Z stderr F error: disk full\n";
        let fp = fingerprint(&line[..], line.len() as u64).unwrap();
        assert_eq!(fp.len, 49);
        assert_eq!(fp.hash, hash(line));
        assert_eq!(fp.hash, 0xf5e2_d153_3c00_56e1);
        assert_eq!(marker(&line[..], 49).unwrap(), Some(hash(&line[17..])));
    }

    #[test]
    fn fingerprint_ends_at_first_line() {
        let data = b"first line\nsecond line\n";
        let fp = fingerprint(&data[..], data.len() as u64).unwrap();
        assert_eq!(fp.len, 11);
        assert_eq!(fp.hash, hash(b"first line\n"));
    }

    #[test]
    fn fingerprint_capped_at_1024_bytes() {
        let data = vec![b'x'; 5000];
        let fp = fingerprint(data.as_slice(), 5000).unwrap();
        assert_eq!(fp.len, 1024);
        assert_eq!(fp.hash, hash(&data[..1024]));
    }

    #[test]
    fn fingerprint_capped_at_size_of_first_read() {
        // The first line is still being written: only what the size said is hashed, and the
        // fingerprint keeps matching once the line is complete.
        let data = b"partial line, complete later\n";
        let fp = fingerprint(&data[..], 7).unwrap();
        assert_eq!(fp.len, 7);
        assert_eq!(fp.hash, hash(b"partial"));
        assert!(head_matches(&data[..], &fp).unwrap());
    }

    #[test]
    fn fingerprint_of_file_truncated_since_stat() {
        let data = b"abc";
        let fp = fingerprint(&data[..], 100).unwrap();
        assert_eq!(fp.len, 3);
    }

    #[test]
    fn empty_file_has_empty_fingerprint() {
        let fp = fingerprint(&b""[..], 0).unwrap();
        assert_eq!(fp, Fingerprint::EMPTY);
        assert!(!fp.is_taken());
        assert!(head_matches(&b"anything"[..], &fp).unwrap());
    }

    #[test]
    fn head_does_not_match_shorter_or_different_file() {
        let fp = fingerprint(&b"hello\n"[..], 6).unwrap();
        assert!(head_matches(&b"hello\nworld\n"[..], &fp).unwrap());
        assert!(!head_matches(&b"hell"[..], &fp).unwrap());
        assert!(!head_matches(&b"jello\n"[..], &fp).unwrap());
        let bogus = Fingerprint { len: 5000, hash: 0 };
        assert!(!head_matches(&b"hello\n"[..], &bogus).unwrap());
    }

    #[test]
    fn marker_covers_32_bytes_before_offset() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(marker(data.as_slice(), 0).unwrap(), Some(hash(b"")));
        assert_eq!(marker(data.as_slice(), 10).unwrap(), Some(hash(&data[..10])));
        assert_eq!(marker(data.as_slice(), 100).unwrap(), Some(hash(&data[68..100])));
        assert_eq!(marker(data.as_slice(), 256).unwrap(), Some(hash(&data[224..])));
        assert_eq!(marker(data.as_slice(), 257).unwrap(), None);
        assert_eq!(marker(data.as_slice(), u64::MAX).unwrap(), None);
        assert_eq!(marker_of(&data[..100]), hash(&data[68..100]));
        assert_eq!(marker_of(&data[..10]), hash(&data[..10]));
    }

    #[test]
    fn short_reads_are_completed() {
        let data = b"0123456789abcdef0123456789abcdef0123456789\nmore\n";
        let fp = fingerprint(&Trickle(data), data.len() as u64).unwrap();
        assert_eq!(fp, fingerprint(&data[..], data.len() as u64).unwrap());
        assert_eq!(marker(&Trickle(data), 40).unwrap(), marker(&data[..], 40).unwrap());
    }

    #[test]
    fn same_file_matches() {
        let data = b"line one\nline two\nline three\n";
        let stored = stored_at(data, 18);
        // The file grew since: still the same file.
        let grown = [&data[..], b"line four\n"].concat();
        assert_eq!(matches(&stored, KEY, grown.as_slice()).unwrap(), Verdict::Same);
    }

    #[test]
    fn other_device_or_inode_does_not_match() {
        let data = b"line one\n";
        let stored = stored_at(data, 9);
        let other_dev = FileKey { dev: 1, ..KEY };
        let other_ino = FileKey { inode: 101, ..KEY };
        assert_eq!(
            matches(&stored, other_dev, &data[..]).unwrap(),
            Verdict::Different(Mismatch::Device)
        );
        assert_eq!(
            matches(&stored, other_ino, &data[..]).unwrap(),
            Verdict::Different(Mismatch::Inode)
        );
    }

    #[test]
    fn reused_inode_with_new_content_does_not_match() {
        let old = b"2026-01-05T10:11:12.1Z stdout F old\nmore\n";
        let new = b"2026-01-05T10:15:30.9Z stdout F new\n";
        let stored = stored_at(old, 36);
        assert_eq!(
            matches(&stored, KEY, &new[..]).unwrap(),
            Verdict::Different(Mismatch::Head)
        );
    }

    #[test]
    fn same_head_rewritten_content_does_not_match() {
        let old = b"header\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        let new = b"header\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
        let stored = stored_at(old, old.len() as u64);
        assert_eq!(
            matches(&stored, KEY, &new[..]).unwrap(),
            Verdict::Different(Mismatch::Marker)
        );
        assert_eq!(
            matches(&stored, KEY, &old[..20]).unwrap(),
            Verdict::Different(Mismatch::Truncated)
        );
    }

    #[test]
    fn checkpoint_of_empty_file_matches_any_content() {
        let stored = stored_at(b"", 0);
        assert_eq!(matches(&stored, KEY, &b"now has data\n"[..]).unwrap(), Verdict::Same);
    }

    #[test]
    fn gzip_twin_head_and_position() {
        let data = b"first line\nsecond line\nthird line\n";
        let stored = stored_at(data, 23);
        let fp = stored.fingerprint;
        assert!(stream_head_matches(&mut &data[..], &fp).unwrap());
        assert!(!stream_head_matches(&mut &b"first lime\n"[..], &fp).unwrap());
        assert!(!stream_head_matches(&mut &b"first"[..], &fp).unwrap());

        let mut stream = Trickle(data);
        assert!(twin_matches(&mut stream, &stored).unwrap());
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"third line\n");

        assert!(
            !twin_matches(&mut &data[..20], &stored).unwrap(),
            "stream ends before the offset"
        );
        let mut rewritten = data.to_vec();
        rewritten[15] = b'X';
        assert!(!twin_matches(&mut rewritten.as_slice(), &stored).unwrap());
    }

    #[test]
    fn gzip_twin_with_offset_inside_first_line() {
        let data = b"first line\nsecond\n";
        let stored = stored_at(data, 4);
        let mut stream = &data[..];
        assert!(twin_matches(&mut stream, &stored).unwrap());
        assert_eq!(stream, b"second\n", "consumed max(offset, len) bytes");
        let stored0 = stored_at(data, 0);
        assert!(twin_matches(&mut &data[..], &stored0).unwrap());
    }

    #[test]
    fn hex_serde() {
        let fp = Fingerprint { len: 3, hash: 0xab };
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, r#"{"len":3,"hash":"00000000000000ab"}"#);
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        assert_eq!(
            serde_json::from_str::<Fingerprint>(r#"{"len":3,"hash":"AB"}"#).unwrap(),
            fp
        );
        for bad in [r#""""#, r#""+ab""#, r#""12345678901234567""#, r#""xyz""#, "171"] {
            let text = format!(r#"{{"len":3,"hash":{bad}}}"#);
            assert!(serde_json::from_str::<Fingerprint>(&text).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn marker_from_file_equals_marker_from_stream(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cut in any::<prop::sample::Index>(),
        ) {
            let offset = cut.index(data.len() + 1) as u64;
            let stored = stored_at(&data, offset);
            prop_assert_eq!(matches(&stored, KEY, data.as_slice()).unwrap(), Verdict::Same);
            prop_assert!(twin_matches(&mut Trickle(&data), &stored).unwrap());
            let o = usize::try_from(offset).unwrap();
            prop_assert_eq!(Some(marker_of(&data[..o])), marker(data.as_slice(), offset).unwrap());
        }

        #[test]
        fn fingerprint_survives_appends(
            data in proptest::collection::vec(any::<u8>(), 1..2000),
            more in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let fp = fingerprint(data.as_slice(), data.len() as u64).unwrap();
            prop_assert!(fp.is_taken() && fp.is_valid());
            let grown = [data.as_slice(), more.as_slice()].concat();
            prop_assert!(head_matches(grown.as_slice(), &fp).unwrap());
            prop_assert!(stream_head_matches(&mut grown.as_slice(), &fp).unwrap());
        }
    }
}
