//! UTF-8 repair and UTF-8-safe cutting.
//!
//! Container output is arbitrary bytes, while a CloudWatch Logs message must be valid UTF-8. Each
//! maximal invalid sequence becomes one U+FFFD, exactly like `String::from_utf8_lossy`, so the
//! result matches what other Rust code (and the WHATWG decoding rule it follows) would produce.

/// The outcome of [`repair`]: the text, and whether anything was replaced (for the counter of
/// repaired records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaired<'a> {
    /// Valid UTF-8: the input itself when it was valid, otherwise the repaired copy.
    pub text: &'a str,
    /// At least one invalid sequence was replaced by U+FFFD.
    pub repaired: bool,
}

/// Returns `bytes` as UTF-8, replacing each invalid sequence by U+FFFD.
///
/// Valid input (the common case) is borrowed without copying. Invalid input is rebuilt in `buf`,
/// which is cleared first and reused across calls so repair does not allocate once it has grown.
pub fn repair<'a>(bytes: &'a [u8], buf: &'a mut String) -> Repaired<'a> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Repaired { text, repaired: false };
    }
    buf.clear();
    for chunk in bytes.utf8_chunks() {
        buf.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            buf.push(char::REPLACEMENT_CHARACTER);
        }
    }
    Repaired {
        text: buf.as_str(),
        repaired: true,
    }
}

/// The largest length `<= max` at which `bytes` can be cut without splitting a UTF-8 sequence.
///
/// Only a well-formed multi-byte sequence that straddles `max` moves the cut back (by at most three
/// bytes); a cut through bytes that are invalid anyway stays at `max`, since repair turns them into
/// U+FFFD whichever way they are cut.
pub fn utf8_floor(bytes: &[u8], max: usize) -> usize {
    if max >= bytes.len() {
        return bytes.len();
    }
    if !is_continuation(bytes[max]) {
        return max;
    }
    // Find the lead byte of the sequence `bytes[max]` continues, at most three bytes back.
    let lowest = max.saturating_sub(3);
    let mut lead = max;
    while lead > lowest && is_continuation(bytes[lead - 1]) {
        lead -= 1;
    }
    if lead == 0 {
        return max;
    }
    lead -= 1;
    let width = match bytes[lead] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return max,
    };
    // The sequence would extend past the cut: cut before its lead byte instead.
    if lead + width > max && std::str::from_utf8(&bytes[lead..(lead + width).min(bytes.len())]).is_ok() {
        lead
    } else {
        max
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_input_is_borrowed() {
        let mut buf = String::new();
        let input = "héllo 😀".as_bytes();
        let r = repair(input, &mut buf);
        assert_eq!(r.text, "héllo 😀");
        assert!(!r.repaired);
        assert!(std::ptr::eq(r.text.as_ptr(), input.as_ptr()));
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn invalid_sequences_become_replacement_characters() {
        let mut buf = String::new();
        for input in [
            &b"a\xffb"[..],
            b"\xff\xfe",
            b"\xe2\x82",
            b"\xe2\x82x",
            b"\xf0\x9f\x98",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"ok \xf4\x90\x80\x80 end",
            b"\x80",
            b"tail \xe2",
        ] {
            let r = repair(input, &mut buf);
            assert!(r.repaired);
            assert_eq!(r.text, String::from_utf8_lossy(input), "{input:?}");
        }
    }

    #[test]
    fn buffer_is_reused() {
        let mut buf = String::with_capacity(64);
        let cap = buf.capacity();
        assert_eq!(repair(b"\xffa", &mut buf).text, "\u{FFFD}a");
        assert_eq!(repair(b"b\xff", &mut buf).text, "b\u{FFFD}");
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn floor_never_splits_a_character() {
        let s = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        let expected = [0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10];
        for (max, want) in expected.iter().enumerate() {
            assert_eq!(utf8_floor(s, max), *want, "max {max}");
        }
    }

    #[test]
    fn floor_on_invalid_bytes_stays_put() {
        assert_eq!(utf8_floor(b"\x80\x80\x80\x80\x80", 3), 3);
        assert_eq!(utf8_floor(b"a\xe2\x82", 2), 2);
        assert_eq!(utf8_floor(b"a\xe2\x82\xac", 2), 1);
        assert_eq!(utf8_floor(b"\xff\x80", 1), 1);
        assert_eq!(utf8_floor(b"", 5), 0);
    }
}
