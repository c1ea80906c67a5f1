//! Network counters of a network namespace, read through a process in it.
//!
//! `<root>/proc/<pid>/net/dev` shows the namespace of `<pid>`. Node totals use PID 1 (the host
//! namespace, as cAdvisor's `lib/container/raw/handler.go` does for `/`); a pod uses any process
//! of its cgroup tree (all its containers share the sandbox's namespace). Never
//! `/proc/net/dev`: that resolves to the *reading* task, i.e. the agent's own namespace unless
//! it runs with `hostNetwork`.

use std::path::Path;

use super::{Dir, HostError, Root};

/// Cumulative counters of one interface, as `/proc/<pid>/net/dev` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Whether an interface counts in the node / pod network fields.
///
/// cAdvisor's `isIgnoredDevice` skips `lo*`, `veth*`, `docker*` and (newer releases) `nerdctl*`.
/// **Quirk, kept for parity:** the VPC CNI names the host side of pod interfaces `eni…`, which
/// is *not* skipped, so node totals count pod traffic twice.
pub fn is_counted_interface(name: &str) -> bool {
    const IGNORED_PREFIXES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];
    !IGNORED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Every interface of the namespace of `pid`, in file order (filtering is the caller's choice:
/// [`is_counted_interface`]).
pub fn read_net_dev(root: &Root, pid: u32) -> Result<Vec<InterfaceCounters>, HostError> {
    let host_path = format!("/proc/{pid}/net/dev");
    root.read_with(&host_path, |text| parse_net_dev(Path::new(&host_path), text))
}

/// [`read_net_dev`] through a process's `/proc/<pid>` directory (see [`crate::host::pids`]).
pub fn read_net_dev_in(root: &Root, proc_pid: &Dir) -> Result<Vec<InterfaceCounters>, HostError> {
    root.read_in(proc_pid, "net/dev", |text| parse_net_dev(Path::new("net/dev"), text))
}

/// Parses the `net/dev` table: two header lines (no `:`), then `  name: 16 numbers`.
///
/// A line without `:` is a header or noise and is skipped; a line with an interface name but
/// not 16 unsigned integers is an error for the whole file (better no network fields this
/// interval than sums over a silently shorter list of interfaces).
pub fn parse_net_dev(path: &Path, text: &str) -> Result<Vec<InterfaceCounters>, HostError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('|') {
            return Err(HostError::parse(path, format!("odd interface name in line {line:?}")));
        }
        let mut cols = [0u64; 16];
        let mut n = 0;
        for word in rest.split_ascii_whitespace() {
            let slot = cols
                .get_mut(n)
                .ok_or_else(|| HostError::parse(path, format!("{name}: more than 16 columns")))?;
            *slot = word
                .parse()
                .map_err(|_| HostError::parse(path, format!("{name}: not an unsigned integer: {word:?}")))?;
            n += 1;
        }
        if n != 16 {
            return Err(HostError::parse(path, format!("{name}: expected 16 columns, got {n}")));
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast;
        // Transmit: bytes packets errs drop fifo colls carrier compressed.
        out.push(InterfaceCounters {
            name: name.to_string(),
            rx_bytes: cols[0],
            rx_packets: cols[1],
            rx_errors: cols[2],
            rx_dropped: cols[3],
            tx_bytes: cols[8],
            tx_packets: cols[9],
            tx_errors: cols[10],
            tx_dropped: cols[11],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0
  eth0:506000000 4000 1 2 0 0 0 5 203000000 3000 3 4 0 0 0 0
eni1a2b3c4d5e6: 11200000 0 0 0 0 0 0 0 21800000 0 0 0 0 0 0 0
";

    #[test]
    fn parses_columns_including_a_name_glued_to_its_counters() {
        let v = parse_net_dev(Path::new("/proc/1/net/dev"), SAMPLE).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[1],
            InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 506_000_000,
                rx_packets: 4000,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 203_000_000,
                tx_packets: 3000,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        assert_eq!(v[2].name, "eni1a2b3c4d5e6");
    }

    #[test]
    fn interface_filter_keeps_eni_quirk() {
        for skipped in ["lo", "veth1234", "docker0", "nerdctl0"] {
            assert!(!is_counted_interface(skipped), "{skipped}");
        }
        for counted in ["eth0", "ens5", "eni1a2b3c4d5e6", "vlan.eth.1", "cni0"] {
            assert!(is_counted_interface(counted), "{counted}");
        }
    }

    #[test]
    fn garbage_is_an_error_naming_file_and_interface() {
        let p = Path::new("/x/proc/42/net/dev");
        for (text, want) in [
            ("eth0: 1 2 3\n", "eth0: expected 16 columns, got 3"),
            (
                "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 -16\n",
                "eth0: not an unsigned integer",
            ),
            (
                "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n",
                "more than 16 columns",
            ),
            (": 1\n", "odd interface name"),
        ] {
            let err = parse_net_dev(p, text).unwrap_err().to_string();
            assert!(err.contains("/x/proc/42/net/dev") && err.contains(want), "{err}");
        }
        // Lines without a colon (headers, blank lines, noise) are skipped.
        assert!(parse_net_dev(p, "garbage\n\n|||\n").unwrap().is_empty());
    }
}
