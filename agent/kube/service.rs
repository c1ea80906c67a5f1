//! Service membership by selector.
//!
//! Upstream reads ready `Endpoints` addresses in every namespace on every agent; kinsight
//! matches each Service's `spec.selector` against the labels of this node's pods instead, which
//! needs only the Services (small objects) and no per-endpoint state. The apiserver source feeds
//! it from a Service watch; the file source from `Service` items of a `List`.

use std::collections::BTreeMap;

use super::model::ConditionStatus;

/// What membership by selector needs of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSelector {
    pub namespace: String,
    pub name: String,
    /// `spec.selector`; empty for Services without one (including `ExternalName`), which
    /// select nothing, even with hand-managed Endpoints that upstream would count.
    pub selector: BTreeMap<String, String>,
    /// `spec.publishNotReadyAddresses`: not-ready pods count as members too (otherwise only pods
    /// whose `Ready` condition is True, to approximate ready endpoint addresses).
    pub publish_not_ready_addresses: bool,
}

impl ServiceSelector {
    /// Whether this Service selects a pod of `namespace` with `labels` and `Ready` condition
    /// `ready`.
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>, ready: Option<ConditionStatus>) -> bool {
        self.namespace == namespace
            && !self.selector.is_empty()
            && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            && (self.publish_not_ready_addresses || ready == Some(ConditionStatus::True))
    }
}

/// The `Service` attribute of a pod: among the Services that select it, the one with the
/// lexicographically smallest name (deterministic; upstream's choice is arbitrary).
pub fn service_for<'a>(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    ready: Option<ConditionStatus>,
    services: impl IntoIterator<Item = &'a ServiceSelector>,
) -> Option<String> {
    services
        .into_iter()
        .filter(|s| s.selects(namespace, labels, ready))
        .map(|s| s.name.as_str())
        .min()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn svc(ns: &str, name: &str, selector: &[(&str, &str)], publish_not_ready: bool) -> ServiceSelector {
        ServiceSelector {
            namespace: ns.to_string(),
            name: name.to_string(),
            selector: map(selector),
            publish_not_ready_addresses: publish_not_ready,
        }
    }

    /// Services, pod namespace, pod labels, `Ready`, expected `Service`.
    type Row = (
        Vec<ServiceSelector>,
        &'static str,
        BTreeMap<String, String>,
        ConditionStatus,
        Option<&'static str>,
    );

    /// The membership table (namespaces, empty selectors, two Services, readiness,
    /// `publishNotReadyAddresses`, a partial match), one line per row.
    #[test]
    fn service_table_of_section_19_12() {
        use ConditionStatus::{False, True};
        let web = [("app", "web")];
        let rows: [Row; 7] = [
            (
                vec![svc("shop", "web-svc", &web, false)],
                "shop",
                map(&[("app", "web"), ("pod-template-hash", "7d4b9c8f5d")]),
                True,
                Some("web-svc"),
            ),
            (
                vec![svc("shop", "web-svc", &web, false)],
                "default",
                map(&web),
                True,
                None,
            ),
            (vec![svc("shop", "empty", &[], false)], "shop", map(&web), True, None),
            (
                vec![
                    svc("shop", "web-svc", &web, false),
                    svc("shop", "web-internal", &web, false),
                ],
                "shop",
                map(&web),
                True,
                Some("web-internal"),
            ),
            (
                vec![svc("shop", "web-svc", &web, false)],
                "shop",
                map(&web),
                False,
                None,
            ),
            (
                vec![svc("shop", "web-svc", &web, true)],
                "shop",
                map(&web),
                False,
                Some("web-svc"),
            ),
            (
                vec![svc("shop", "web-svc", &[("app", "web"), ("tier", "front")], false)],
                "shop",
                map(&web),
                True,
                None,
            ),
        ];
        for (i, (services, ns, labels, ready, want)) in rows.iter().enumerate() {
            assert_eq!(
                service_for(ns, labels, Some(*ready), services).as_deref(),
                *want,
                "row {i}"
            );
        }
    }

    #[test]
    fn a_pod_without_a_ready_condition_is_not_ready() {
        let s = [svc("ns", "s", &[("a", "b")], false)];
        assert_eq!(service_for("ns", &map(&[("a", "b")]), None, &s), None);
    }
}
