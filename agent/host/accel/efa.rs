//! Elastic Fabric Adapter devices from sysfs: the hardware counters of each EFA device and the
//! MAC address of the network interface it belongs to.
//!
//! The kernel's `efa` driver registers every adapter as an RDMA device,
//! `/sys/class/infiniband/<device>` (a link into `/sys/devices`), with one directory per port
//! and the driver's counters as files of one decimal number each in
//! `ports/<port>/hw_counters/` (`drivers/infiniband/hw/efa/efa_verbs.c`, `efa_port_stats_descs`
//! in the Linux kernel). Upstream reads the same files and sums them over the ports
//! (`internal/efa/efaSysfs.go` in awscontainerinsightreceiver); the counters read here are the
//! eleven that the CloudWatch agent declares as `*_efa_*` metrics
//! (`getEFAMetricDeclarations` in `translator/translate/otel/exporter/awsemf/kubernetes.go`).
//!
//! A counter the driver does not have (older drivers lack the `retrans_*` and `*_remote_*`
//! ones), or that says `N/A (no PMA)` (a kernel quirk of some RDMA drivers, see
//! `prometheus/node_exporter#966`), is absent, not zero. The port's first GID is the adapter's
//! IPv6 link-local address, whose EUI-64 interface identifier encodes the MAC of the ENI the
//! adapter belongs to; IMDS turns that MAC into the `NetworkInterfaceId` dimension.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Arc;
use tokio::time::Instant;

use super::dcgm::Assignment;
use crate::host::{HostError, Root};

/// Where the RDMA devices are listed.
pub const INFINIBAND: &str = "/sys/class/infiniband";

/// The counters read, as `hw_counters/<file>` names, in [`EfaCounters`] order.
pub const COUNTER_FILES: [&str; COUNTERS] = [
    "rdma_read_bytes",
    "rdma_write_bytes",
    "rdma_write_recv_bytes",
    "rx_bytes",
    "rx_drops",
    "tx_bytes",
    "retrans_bytes",
    "retrans_pkts",
    "retrans_timeout_events",
    "impaired_remote_conn_events",
    "unresponsive_remote_events",
];

/// How many counters a device has here.
pub const COUNTERS: usize = 11;

/// One device's counters, summed over its ports; `None` where no port has the counter.
pub type EfaCounters = [Option<u64>; COUNTERS];

/// One EFA device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfaDevice {
    /// The RDMA device name (`rdmap16s27`): also the device id the EFA device plugin gives the
    /// kubelet for `vpc.amazonaws.com/efa`, by which pod-resources names its holder.
    pub name: Arc<str>,
    pub counters: EfaCounters,
    /// The MAC of its network interface, from the first GID of port 1; `None` when that GID is
    /// missing or not an EUI-64 link-local address.
    pub mac: Option<String>,
}

/// What one read of sysfs found: the devices, and the files that could not be read or parsed
/// (named, for the log; the rest of the device is still reported).
#[derive(Debug, Default)]
pub struct EfaRead {
    pub devices: Vec<EfaDevice>,
    pub errors: Vec<HostError>,
}

/// Reads every EFA device under `root`; `Ok(None)` when the node has no RDMA devices at all
/// (`/sys/class/infiniband` absent: the common case, said nowhere).
pub fn read(root: &Root) -> Result<Option<EfaRead>, HostError> {
    let Some(mut names) = root.subdirectories_and_links(INFINIBAND)? else {
        return Ok(None);
    };
    names.sort_unstable();
    let mut out = EfaRead::default();
    for name in names {
        let dir = format!("{INFINIBAND}/{name}");
        let ports = match root.subdirectories(format!("{dir}/ports")) {
            Ok(Some(mut ports)) => {
                ports.sort_unstable();
                ports
            }
            // A device removed while listed, or one without ports: nothing to report.
            Ok(None) => continue,
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        };
        let mut counters: EfaCounters = [None; COUNTERS];
        for port in &ports {
            for (slot, file) in counters.iter_mut().zip(COUNTER_FILES) {
                match read_counter(root, &format!("{dir}/ports/{port}/hw_counters/{file}")) {
                    Ok(Some(v)) => *slot = Some(slot.unwrap_or(0).saturating_add(v)),
                    Ok(None) => {}
                    Err(e) => out.errors.push(e),
                }
            }
        }
        let mac = match root.read(format!("{dir}/ports/1/gids/0")) {
            Ok(gid) => mac_of_gid(gid.trim()),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                out.errors.push(e);
                None
            }
        };
        out.devices.push(EfaDevice {
            name: Arc::from(name),
            counters,
            mac,
        });
    }
    Ok(Some(out))
}

/// One device's figures as the metrics tick reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct EfaReading {
    pub device: Arc<str>,
    /// The `eni-…` id of the device's network interface, when IMDS said it.
    pub interface_id: Option<Arc<str>>,
    /// Per second over the last interval, in [`COUNTER_FILES`] order; `None` on the first read
    /// of a device, for an absent counter, and for a counter that went down (driver reloaded).
    pub rates: [Option<f64>; COUNTERS],
    /// The containers the kubelet gave the device to (empty: none, or not known).
    pub holders: Vec<Assignment>,
}

/// The previous read of each device, to turn its counters into rates.
#[derive(Debug, Default)]
pub struct EfaRates {
    prev: HashMap<Arc<str>, (Instant, EfaCounters)>,
}

impl EfaRates {
    /// The rates of `device` since its previous read, and remembers this one. Devices not in a
    /// read are forgotten by [`EfaRates::retain`].
    pub fn update(&mut self, device: &EfaDevice, at: Instant) -> [Option<f64>; COUNTERS] {
        let mut rates = [None; COUNTERS];
        if let Some((then, before)) = self.prev.get(&device.name) {
            let secs = at.saturating_duration_since(*then).as_secs_f64();
            if secs > 0.0 {
                for ((rate, now), before) in rates.iter_mut().zip(device.counters).zip(before) {
                    if let (Some(now), Some(before)) = (now, before)
                        && now >= *before
                    {
                        *rate = Some((now - before) as f64 / secs);
                    }
                }
            }
        }
        self.prev.insert(Arc::clone(&device.name), (at, device.counters));
        rates
    }

    /// Forgets the devices not named in `current`.
    pub fn retain(&mut self, current: &[EfaDevice]) {
        self.prev.retain(|name, _| current.iter().any(|d| d.name == *name));
    }
}

/// One counter file: its number, `None` when the driver has no such counter or cannot say.
fn read_counter(root: &Root, path: &str) -> Result<Option<u64>, HostError> {
    let parsed = root.read_with(path, |text| {
        let text = text.trim();
        if text.starts_with("N/A") {
            return Ok(None);
        }
        text.parse::<u64>()
            .map(Some)
            .map_err(|_| HostError::parse(std::path::Path::new(path), format!("not a counter: {text:.40}")))
    });
    match parsed {
        // Some drivers list counters they cannot read (`EOPNOTSUPP`, `EINVAL`), as upstream
        // also takes as "not available".
        Err(HostError::Read { source, .. })
            if [rustix::io::Errno::OPNOTSUPP, rustix::io::Errno::INVAL]
                .iter()
                .any(|e| source.raw_os_error() == Some(e.raw_os_error())) =>
        {
            Ok(None)
        }
        Err(e) if e.is_not_found() => Ok(None),
        other => other,
    }
}

/// The MAC encoded in an EUI-64 IPv6 link-local address (RFC 4291 appendix A: the interface
/// identifier is the MAC with `ff:fe` inserted in the middle and the universal/local bit
/// inverted), as IMDS spells MACs: lower-case hex pairs joined by colons.
pub fn mac_of_gid(gid: &str) -> Option<String> {
    let ip: Ipv6Addr = gid.parse().ok()?;
    let b = ip.octets();
    let link_local = b[0] == 0xfe && b[1] & 0xc0 == 0x80;
    if !link_local || b[11] != 0xff || b[12] != 0xfe {
        return None;
    }
    let mac = [b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]];
    Some(mac.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gid_gives_the_mac_of_its_interface() {
        // sysfs writes GIDs in full form.
        assert_eq!(
            mac_of_gid("fe80:0000:0000:0000:0c11:22ff:fe33:4455").as_deref(),
            Some("0e:11:22:33:44:55")
        );
        assert_eq!(mac_of_gid("fe80::200:ff:fe00:1").as_deref(), Some("00:00:00:00:00:01"));
        assert_eq!(mac_of_gid("fe80::1"), None, "not EUI-64");
        assert_eq!(mac_of_gid("2001:db8::200:ff:fe00:1"), None, "not link-local");
        assert_eq!(mac_of_gid("0000:0000:0000:0000:0000:0000:0000:0000"), None);
        assert_eq!(mac_of_gid("garbage"), None);
    }

    fn write(base: &std::path::Path, rel: &str, text: &str) {
        let p = base.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn counters_are_summed_over_ports_and_odd_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let dev = "sys/devices/pci0000:00/0000:00:1d.0/infiniband/rdmap0s29";
        write(dir.path(), &format!("{dev}/ports/1/hw_counters/rx_bytes"), "100\n");
        write(dir.path(), &format!("{dev}/ports/2/hw_counters/rx_bytes"), "23\n");
        write(
            dir.path(),
            &format!("{dev}/ports/1/hw_counters/tx_bytes"),
            "N/A (no PMA)\n",
        );
        write(dir.path(), &format!("{dev}/ports/1/hw_counters/rx_drops"), "lots\n");
        write(
            dir.path(),
            &format!("{dev}/ports/1/gids/0"),
            "fe80:0000:0000:0000:0c11:22ff:fe33:4455\n",
        );
        std::fs::create_dir_all(dir.path().join("sys/class/infiniband")).unwrap();
        // The class entry is a relative link, as the kernel makes it.
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:00:1d.0/infiniband/rdmap0s29",
            dir.path().join("sys/class/infiniband/rdmap0s29"),
        )
        .unwrap();
        let read = read(&Root::new(dir.path())).unwrap().unwrap();
        assert_eq!(read.devices.len(), 1);
        let d = &read.devices[0];
        assert_eq!(&*d.name, "rdmap0s29");
        assert_eq!(d.counters[3], Some(123), "rx_bytes of both ports");
        assert_eq!(d.counters[5], None, "N/A is absent, not zero");
        assert_eq!(d.counters[4], None, "an unparsable counter is absent…");
        assert_eq!(read.errors.len(), 1, "…and named: {:?}", read.errors);
        assert!(read.errors[0].to_string().contains("rx_drops"), "{}", read.errors[0]);
        assert_eq!(d.counters[0], None, "a counter this driver lacks");
        assert_eq!(d.mac.as_deref(), Some("0e:11:22:33:44:55"));
    }

    #[test]
    fn rates_need_two_reads_and_skip_a_counter_that_went_down() {
        let mut rates = EfaRates::default();
        let t0 = Instant::now();
        let dev = |rx: u64, tx: u64| EfaDevice {
            name: Arc::from("rdmap0s29"),
            counters: {
                let mut c = [None; COUNTERS];
                c[3] = Some(rx);
                c[5] = Some(tx);
                c
            },
            mac: None,
        };
        assert_eq!(rates.update(&dev(1000, 500), t0), [None; COUNTERS]);
        let r = rates.update(&dev(3000, 100), t0 + std::time::Duration::from_secs(20));
        assert_eq!(r[3], Some(100.0), "2000 bytes in 20 s");
        assert_eq!(r[5], None, "tx went down: no rate this interval");
        assert_eq!(r[0], None);
        rates.retain(&[]);
        assert!(rates.prev.is_empty());
    }

    #[test]
    fn no_rdma_devices_is_nothing_to_say() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&Root::new(dir.path())).unwrap().is_none());
    }

    #[test]
    fn a_link_out_of_the_host_root_stays_inside_it() {
        // A device link pointing at an absolute path resolves inside the root (RESOLVE_IN_ROOT),
        // so it cannot make the agent read the container's own files.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class/infiniband")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("sys/class/infiniband/evil")).unwrap();
        let read = read(&Root::new(dir.path())).unwrap().unwrap();
        assert!(read.devices.is_empty(), "{:?}", read.devices);
    }
}
