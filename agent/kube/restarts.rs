//! `pod_number_of_container_restarts` and its per-container twin `number_of_container_restarts`
//! as per-tick deltas, as upstream's `podstore.go` computes them (not the cumulative count).
//!
//! The value is `max(0, Σ restartCount now − Σ restartCount at the previous observation)`,
//! absent on the first observation of a key and when the previous value is older than
//! [`RESTART_EXPIRY`]. Keys are namespace + pod name (+ container name), not the UID, so a
//! `StatefulSet` pod recreated under the same name is compared with its predecessor and the drop
//! becomes 0, as upstream does. Keys not observed for [`RESTART_EXPIRY`] are evicted, so the map
//! holds at most the pods of the last ten minutes.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::model::PodInfo;

/// Previous values expire after 10 min (upstream's TTL map in `podstore.go`).
pub const RESTART_EXPIRY: Duration = Duration::from_mins(10);

/// How often, at most, expired keys are swept out of the map.
const SWEEP_EVERY: Duration = Duration::from_mins(1);

#[derive(Debug, Clone, Copy)]
struct Seen {
    sum: u64,
    at: Instant,
}

/// Remembers the last restart sums per pod and per container; one per metrics pipeline.
#[derive(Debug, Default)]
pub struct RestartTracker {
    pods: HashMap<String, Seen>,
    containers: HashMap<String, Seen>,
    last_sweep: Option<Instant>,
}

impl RestartTracker {
    pub fn new() -> RestartTracker {
        RestartTracker::default()
    }

    /// `pod_number_of_container_restarts` for this tick, observed now.
    pub fn delta(&mut self, pod: &PodInfo) -> Option<f64> {
        self.delta_at(pod, Instant::now())
    }

    /// `pod_number_of_container_restarts` for a tick at `now`.
    pub fn delta_at(&mut self, pod: &PodInfo, now: Instant) -> Option<f64> {
        self.sweep(now);
        let key = format!("{}/{}", pod.namespace, pod.name);
        observe(&mut self.pods, key, pod.restart_count_sum(), now)
    }

    /// `number_of_container_restarts` of the container at `index` ([`PodInfo::container`]) for
    /// a tick at `now`; `None` also when there is no such container.
    pub fn container_delta_at(&mut self, pod: &PodInfo, index: usize, now: Instant) -> Option<f64> {
        self.sweep(now);
        let c = pod.container(index)?;
        let key = format!("{}/{}/{}", pod.namespace, pod.name, c.name);
        observe(&mut self.containers, key, c.restart_count, now)
    }

    /// Keys currently remembered (pods, containers); for tests and memory accounting.
    pub fn len(&self) -> (usize, usize) {
        (self.pods.len(), self.containers.len())
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.containers.is_empty()
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        let fresh = |s: &Seen| !is_expired(s, now);
        self.pods.retain(|_, s| fresh(s));
        self.containers.retain(|_, s| fresh(s));
    }
}

fn is_expired(seen: &Seen, now: Instant) -> bool {
    now.saturating_duration_since(seen.at) > RESTART_EXPIRY
}

fn observe(map: &mut HashMap<String, Seen>, key: String, sum: u64, now: Instant) -> Option<f64> {
    let previous = map.insert(key, Seen { sum, at: now });
    previous
        .filter(|p| !is_expired(p, now))
        .map(|p| sum.saturating_sub(p.sum) as f64)
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "quantities and sums are integers, exact in f64")]
mod tests {
    use super::*;
    use crate::kube::model::{ContainerInfo, PodPhase};

    fn pod(name: &str, restarts: &[u64]) -> PodInfo {
        PodInfo {
            uid: format!("uid-{name}"),
            name: name.to_string(),
            namespace: "ns".to_string(),
            node_name: None,
            phase: PodPhase::Running,
            workload_name: name.to_string(),
            owners: vec![],
            workload_name_preferring_full: name.to_string(),
            owners_preferring_full: vec![],
            labels: std::collections::BTreeMap::new(),
            host_network: false,
            mirror_of: None,
            log_exclusions: Vec::new(),
            annotations: std::collections::BTreeMap::new(),
            containers: restarts
                .iter()
                .enumerate()
                .map(|(i, &r)| ContainerInfo {
                    name: format!("c{i}"),
                    has_status: true,
                    in_spec: true,
                    restart_count: r,
                    ..ContainerInfo::default()
                })
                .collect(),
            init_containers: vec![],
            service: None,
            ready: None,
            scheduled: None,
            metrics_endpoint: None,
        }
    }

    /// The hand-worked restart sequence (first observation, increases, a recreated pod, expiry),
    /// tick by tick.
    #[test]
    fn restart_sequence_of_section_19_9() {
        let t0 = Instant::now();
        let tick = |n: u64| t0 + Duration::from_secs(60 * n);
        let mut tr = RestartTracker::new();
        assert_eq!(tr.delta_at(&pod("web-0", &[2]), tick(0)), None, "first observation");
        assert_eq!(tr.delta_at(&pod("web-0", &[1, 2]), tick(1)), Some(1.0));
        assert_eq!(tr.delta_at(&pod("web-0", &[3]), tick(2)), Some(0.0));
        assert_eq!(tr.delta_at(&pod("web-0", &[4, 3]), tick(3)), Some(4.0));
        let mut recreated = pod("web-0", &[0]);
        recreated.uid = "a-new-uid".to_string();
        assert_eq!(tr.delta_at(&recreated, tick(4)), Some(0.0), "recreated: max(0, …)");
        assert_eq!(
            tr.delta_at(&pod("web-0", &[1]), tick(4 + 15)),
            None,
            "expired after 10 min"
        );
        assert_eq!(tr.delta_at(&pod("web-0", &[1]), tick(20)), Some(0.0));
    }

    #[test]
    fn container_twin_follows_the_same_rules() {
        let t0 = Instant::now();
        let mut tr = RestartTracker::new();
        assert_eq!(tr.container_delta_at(&pod("p", &[0, 5]), 1, t0), None);
        let later = t0 + Duration::from_mins(1);
        assert_eq!(tr.container_delta_at(&pod("p", &[0, 7]), 1, later), Some(2.0));
        assert_eq!(tr.container_delta_at(&pod("p", &[0, 7]), 0, later), None, "c0 is new");
        assert_eq!(
            tr.container_delta_at(&pod("p", &[0, 7]), 9, later),
            None,
            "no such container"
        );
    }

    #[test]
    fn vanished_pods_are_evicted_after_the_expiry() {
        let t0 = Instant::now();
        let mut tr = RestartTracker::new();
        for i in 0..50 {
            tr.delta_at(&pod(&format!("gone-{i}"), &[1]), t0);
        }
        tr.delta_at(&pod("stays", &[0]), t0 + Duration::from_mins(9));
        assert_eq!(tr.len().0, 51);
        tr.delta_at(&pod("stays", &[0]), t0 + Duration::from_mins(11));
        assert_eq!(tr.len(), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn delta_uses_the_tokio_clock() {
        let mut tr = RestartTracker::new();
        assert_eq!(tr.delta(&pod("p", &[1])), None);
        tokio::time::advance(Duration::from_mins(1)).await;
        assert_eq!(tr.delta(&pod("p", &[2])), Some(1.0));
        tokio::time::advance(RESTART_EXPIRY + Duration::from_secs(1)).await;
        assert_eq!(tr.delta(&pod("p", &[3])), None);
    }
}
