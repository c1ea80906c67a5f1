//! Network fields: per-interface records and their sums, as upstream's
//! `internal/cadvisor/extractors/net_extractor.go` computes them.

use tokio::time::Instant;

use crate::host::net::{InterfaceCounters, is_counted_interface};

use super::super::rate::RateCalculator;
use super::super::record::{Record, RecordType};
use super::{Field, RateKey, scope};

/// Field names of the sums (on Node / Pod) and of the per-interface records.
#[derive(Debug)]
pub struct NetNames {
    pub kind: RecordType,
    pub sums: [&'static str; 8],
    pub sum_total: &'static str,
    pub per_interface: [&'static str; 8],
    pub per_interface_total: &'static str,
}

macro_rules! net_names {
    ($kind:expr, $sum:literal, $iface:literal) => {
        NetNames {
            kind: $kind,
            sums: [
                concat!($sum, "_rx_bytes"),
                concat!($sum, "_tx_bytes"),
                concat!($sum, "_rx_packets"),
                concat!($sum, "_tx_packets"),
                concat!($sum, "_rx_dropped"),
                concat!($sum, "_tx_dropped"),
                concat!($sum, "_rx_errors"),
                concat!($sum, "_tx_errors"),
            ],
            sum_total: concat!($sum, "_total_bytes"),
            per_interface: [
                concat!($iface, "_rx_bytes"),
                concat!($iface, "_tx_bytes"),
                concat!($iface, "_rx_packets"),
                concat!($iface, "_tx_packets"),
                concat!($iface, "_rx_dropped"),
                concat!($iface, "_tx_dropped"),
                concat!($iface, "_rx_errors"),
                concat!($iface, "_tx_errors"),
            ],
            per_interface_total: concat!($iface, "_total_bytes"),
        }
    };
}

pub const NODE_NET: NetNames = net_names!(RecordType::NodeNet, "node_network", "node_interface_network");
pub const POD_NET: NetNames = net_names!(RecordType::PodNet, "pod_network", "pod_interface_network");

const FIELDS: [Field; 8] = [
    Field::NetRxBytes,
    Field::NetTxBytes,
    Field::NetRxPackets,
    Field::NetTxPackets,
    Field::NetRxDropped,
    Field::NetTxDropped,
    Field::NetRxErrors,
    Field::NetTxErrors,
];

fn counters(c: &InterfaceCounters) -> [u64; 8] {
    [
        c.rx_bytes,
        c.tx_bytes,
        c.rx_packets,
        c.tx_packets,
        c.rx_dropped,
        c.tx_dropped,
        c.rx_errors,
        c.tx_errors,
    ]
}

/// Adds the sums to `owner` (the Node or Pod record) and returns one record per counted
/// interface, each with the owner's attributes plus `interface`. `owner_scope` keys the
/// rates (node, or the pod's cgroup). Sums cover the interfaces that have the field
/// this tick; with none contributing, the sum is absent.
pub fn add(
    owner: &mut Record,
    names: &NetNames,
    owner_scope: &str,
    interfaces: &[InterfaceCounters],
    rates: &mut RateCalculator<RateKey>,
    at: Instant,
    per_interface_records: bool,
) -> Vec<Record> {
    let mut sums: [Option<f64>; 8] = [None; 8];
    let mut records = Vec::new();
    for iface in interfaces.iter().filter(|i| is_counted_interface(&i.name)) {
        let s = scope(&[owner_scope, &iface.name]);
        let values = counters(iface);
        let mut per = [None; 8];
        for (i, field) in FIELDS.iter().enumerate() {
            per[i] = rates.rate(
                RateKey {
                    scope: s,
                    field: *field,
                },
                values[i],
                at,
            );
            if let Some(v) = per[i] {
                sums[i] = Some(sums[i].unwrap_or(0.0) + v);
            }
        }
        if per_interface_records {
            let mut r = Record::new(names.kind, owner.timestamp_ms);
            r.attributes.clone_from(&owner.attributes);
            r.set_attribute("interface", iface.name.as_str());
            for (i, name) in names.per_interface.iter().enumerate() {
                r.set_field(name, per[i]);
            }
            r.set_field(names.per_interface_total, per[0].zip(per[1]).map(|(a, b)| a + b));
            records.push(r);
        }
    }
    for (i, name) in names.sums.iter().enumerate() {
        owner.set_field(name, sums[i]);
    }
    // `*_total_bytes = rx_bytes + tx_bytes` only when both rates exist.
    owner.set_field(names.sum_total, sums[0].zip(sums[1]).map(|(a, b)| a + b));
    records
}
