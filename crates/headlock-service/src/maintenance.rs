//! Background work every node runs while it serves: reconciling key changes nobody is
//! working on any more, and collecting garbage, each under a lease so that, with several
//! nodes on one database, one node at a time does it.
//!
//! | job | every | lease | what |
//! |---|---|---|---|
//! | reconcile | [`Maintenance::reconcile_every`] (30 s) | per intent (`intent:<id>`) | [`Service::reconcile`]: intents whose node died, or left for a KMIP outage |
//! | garbage | [`Maintenance::gc_every`] (10 min) | `job:gc` | [`Service::collect_garbage_everywhere`]: what failed or interrupted backups left |
//!
//! A failed round is logged and tried again at the next tick; nothing here ends the
//! process.

use std::time::Duration;

use tokio::sync::watch;

use crate::Service;

/// How often each job runs.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// Reconciliation of abandoned key changes.
    pub reconcile_every: Duration,
    /// Garbage collection of every cluster.
    pub gc_every: Duration,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            reconcile_every: Duration::from_secs(30),
            gc_every: Duration::from_secs(600),
        }
    }
}

impl Service {
    /// Runs the periodic jobs until `shutdown` turns true. Spawn it beside the API.
    pub async fn run_maintenance(
        &self,
        schedule: Maintenance,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut reconcile = tokio::time::interval(schedule.reconcile_every);
        let mut gc = tokio::time::interval(schedule.gc_every);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Both ran at start already: skip the immediate first ticks.
        reconcile.tick().await;
        gc.tick().await;
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                _ = reconcile.tick() => {
                    match self.reconcile().await {
                        Ok(report) if report.resolved > 0 => {
                            tracing::info!(?report, "reconciled abandoned key changes");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "periodic reconciliation failed"),
                    }
                }
                _ = gc.tick() => {
                    match self.try_lease("job:gc".to_string()).await {
                        Ok(Some(_lease)) => match self.collect_garbage_everywhere().await {
                            Ok(report) => tracing::debug!(?report, "periodic garbage collection"),
                            Err(e) => tracing::warn!(error = %e, "periodic garbage collection failed"),
                        },
                        Ok(None) => tracing::debug!("garbage collection runs on another node"),
                        Err(e) => tracing::warn!(error = %e, "cannot take the garbage collection lease"),
                    }
                }
            }
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
