//! Leader election on a `coordination.k8s.io/v1` Lease, `kinsight-leader` in the agent's
//! namespace, as client-go's `leaderelection` package does it (`tools/leaderelection`,
//! `resourcelock/leaselock.go`), written here on the Lease API because no maintained crate fits
//! `kube` 5:
//!
//! - A candidate GETs the Lease and creates it when missing (`409 AlreadyExists`: someone else was
//!   first). It takes the Lease over when it has no holder, or when the record (holder and
//!   renew time) has not changed for a whole lease duration *as this candidate observed it* —
//!   local monotonic time, never the other pod's clock — exactly as client-go judges expiry.
//! - Every write is a PUT carrying the `resourceVersion` just read, so two candidates racing for an
//!   expired Lease cannot both win: the apiserver answers the second with `409 Conflict`.
//! - The holder renews every `duration / 12` (5 s of the default 60 s); a holder that has not
//!   renewed successfully for `duration / 4` (15 s) stops leading at once, long before another pod
//!   may take over. Candidates retry every `duration / 12`. After losing the Lease it keeps
//!   competing.
//! - On shutdown the holder releases the Lease (clears `holderIdentity`, duration 1 s), so another
//!   pod takes over at its next retry instead of waiting for expiry.
//!
//! The identity is `<node name>/<pod name>`: the node name alone is not unique during a rolling
//! update with surge, when two agent pods run on one node.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::rbac::LEASE_NAME;
use crate::telemetry::{Name, Telemetry};

/// client-go's and the CloudWatch agent's lease duration.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_mins(1);

/// What the elector needs.
#[derive(Clone)]
pub struct Elector {
    pub client: Client,
    /// The agent's namespace (`K8S_NAMESPACE`).
    pub namespace: String,
    /// `<node name>/<pod name>`.
    pub identity: String,
    pub duration: Duration,
    pub telemetry: Telemetry,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// What one attempt found.
enum Attempt {
    /// This agent holds the Lease now.
    Holding,
    /// Another holder's Lease is still valid, or another candidate won the race.
    Other(Option<String>),
}

/// The Lease record as a candidate observed it, with when it last changed.
#[derive(Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    since: Option<Instant>,
}

impl Elector {
    fn renew_every(&self) -> Duration {
        self.duration / 12
    }

    fn renew_deadline(&self) -> Duration {
        self.duration / 4
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// Competes for the Lease until `cancel`, publishing leadership on `tx`; releases the Lease
    /// on the way out when holding it.
    pub async fn run(self, tx: watch::Sender<bool>, cancel: CancellationToken) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut observed = Observed::default();
        let mut last_renewed: Option<Instant> = None;
        let mut last_holder: Option<String> = None;
        loop {
            let leading = *tx.borrow();
            let attempt = tokio::time::timeout(self.renew_deadline(), self.attempt(&api, &mut observed)).await;
            match attempt {
                Ok(Ok(Attempt::Holding)) => {
                    last_renewed = Some(Instant::now());
                    if !leading {
                        tracing::info!(identity = %self.identity, lease = LEASE_NAME, namespace = %self.namespace,
                            "became the leader: this agent now sends the cluster records");
                        self.telemetry.add(Name::LeaderTransitions, &[("to", "leader")], 1);
                        tx.send_replace(true);
                    }
                }
                Ok(Ok(Attempt::Other(holder))) => {
                    if leading {
                        tracing::warn!(
                            holder = holder.as_deref().unwrap_or(""),
                            "lost the leader Lease; cluster records stop here"
                        );
                        self.telemetry.add(Name::LeaderTransitions, &[("to", "follower")], 1);
                        tx.send_replace(false);
                    }
                    if holder != last_holder {
                        tracing::info!(
                            holder = holder.as_deref().unwrap_or(""),
                            "leader Lease held by another agent"
                        );
                        last_holder = holder;
                    }
                }
                Ok(Err(e)) => self.failed(&tx, last_renewed, &crate::telemetry::chain(&e)),
                Err(_) => self.failed(&tx, last_renewed, "no answer from the apiserver"),
            }
            self.telemetry
                .set(Name::Leader, &[], if *tx.borrow() { 1.0 } else { 0.0 });
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.renew_every()) => {}
            }
        }
        if *tx.borrow() {
            tx.send_replace(false);
            self.telemetry.set(Name::Leader, &[], 0.0);
            match tokio::time::timeout(Duration::from_secs(5), self.release(&api)).await {
                Ok(Ok(())) => tracing::info!("released the leader Lease"),
                Ok(Err(e)) => {
                    let error = crate::telemetry::chain(&e);
                    tracing::warn!(%error, "could not release the leader Lease; another agent takes over when it expires");
                }
                Err(_) => tracing::warn!(
                    "could not release the leader Lease in 5 s; another agent takes over when it expires"
                ),
            }
        }
    }

    /// A failed attempt: a leader that has not renewed for the renew deadline steps down.
    fn failed(&self, tx: &watch::Sender<bool>, last_renewed: Option<Instant>, error: &str) {
        let overdue = last_renewed.is_none_or(|at| at.elapsed() >= self.renew_deadline());
        if *tx.borrow() && overdue {
            tracing::warn!(%error, "could not renew the leader Lease in time; stepping down");
            self.telemetry.add(Name::LeaderTransitions, &[("to", "follower")], 1);
            tx.send_replace(false);
        } else {
            tracing::debug!(%error, "leader Lease attempt failed");
        }
    }

    async fn attempt(&self, api: &Api<Lease>, observed: &mut Observed) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_string()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Holding),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Other(None)),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone());
        if observed.record.as_ref() != Some(&record) {
            observed.record = Some(record);
            observed.since = Some(Instant::now());
        }
        let valid_for = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let expired = holder.is_none() || observed.since.is_some_and(|at| at.elapsed() >= valid_for);
        if !mine && !expired {
            return Ok(Attempt::Other(holder));
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(self.duration_secs());
        // The PUT carries the resourceVersion just read: a concurrent writer makes it 409.
        match api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Holding),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Other(holder)),
            Err(e) => Err(e),
        }
    }

    async fn release(&self, api: &Api<Lease>) -> Result<(), kube::Error> {
        let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        // client-go's release: no holder, a 1 s duration, the renew time now.
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        api.replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}
