//! Parser for the cgroup "flat keyed" files (`memory.stat`, `cpu.stat`, `cpuacct.stat`): lines
//! of `key value`. Keys nobody asked for are skipped whatever their value; a wanted key with a
//! value that is not an unsigned integer is an error for the whole file.

use std::path::Path;

use crate::host::HostError;

/// Fills `out[i]` with the value of `wanted[i]` (left `None` when the key is absent).
/// No allocation: this runs for every cgroup at every tick.
pub(super) fn flat_keyed(path: &Path, text: &str, wanted: &[&str], out: &mut [Option<u64>]) -> Result<(), HostError> {
    debug_assert_eq!(wanted.len(), out.len());
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(key), Some(value), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Some(i) = wanted.iter().position(|w| *w == key) else {
            continue;
        };
        out[i] = Some(
            value
                .parse::<u64>()
                .map_err(|_| HostError::parse(path, format!("{key}: not an unsigned integer: {value:?}")))?,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_odd_and_unwanted_lines() {
        let mut out = [None; 2];
        flat_keyed(
            Path::new("x"),
            "a 1\n\nweird line here\nz abc\nb 2\n",
            &["b", "a"],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [Some(2), Some(1)]);
        let mut out = [None; 1];
        flat_keyed(Path::new("x"), "a 1\n", &["missing"], &mut out).unwrap();
        assert_eq!(out, [None]);
    }

    #[test]
    fn bad_wanted_value_is_an_error_naming_file_and_key() {
        let mut out = [None; 1];
        let err = flat_keyed(Path::new("/x/memory.stat"), "cache -5\n", &["cache"], &mut out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/x/memory.stat") && err.contains("cache: not an unsigned integer"),
            "{err}"
        );
    }
}
