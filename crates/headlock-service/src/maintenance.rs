//! Background work every node runs while it serves: reconciling key changes nobody is
//! working on any more, and collecting garbage, each under a lease so that, with several
//! nodes on one database, one node at a time does it.
//!
//! | job | every | lease | what |
//! |---|---|---|---|
//! | reconcile | [`Maintenance::reconcile_every`] (30 s) | per intent (`intent:<id>`) | [`Service::reconcile`]: intents whose node died, or left for a KMIP outage |
//! | garbage | [`Maintenance::gc_every`] (10 min) | `job:gc` | [`Service::collect_garbage_everywhere`]: what failed or interrupted backups left |
//! | re-encryption | [`Maintenance::reencrypt_every`] (30 s, and at once at start) | per job (`reencrypt:<id>`) | [`Service::resume_reencryption_jobs`]: compromise recovery jobs nobody works on ([`crate::compromise`]) |
//! | key schedule | [`Maintenance::key_schedule_every`] (60 s) | `job:schedule` | [`Service::rotate_due_keys`]: automatic rotation ([`crate::lifecycle`]) |
//! | key destruction | [`Maintenance::key_schedule_every`] (60 s) | `job:destroy` | [`Service::destroy_retired_keys`]: retired keys past their grace |
//! | key watch | [`Maintenance::key_watch_every`] (60 s) | `job:watch` | [`Service::watch_key_states`]: current keys not Active in the KMIP server |
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
    /// Resumption of re-encryption jobs nobody works on.
    pub reencrypt_every: Duration,
    /// Automatic rotation and destruction of retired keys (the key lifecycle).
    pub key_schedule_every: Duration,
    /// The key state watch.
    pub key_watch_every: Duration,
}

/// The environment variable that sets [`Maintenance::key_schedule_every`], in seconds.
pub const KEY_SCHEDULE_ENV: &str = "HEADLOCK_KEY_SCHEDULE_INTERVAL_SECS";
/// The environment variable that sets [`Maintenance::key_watch_every`], in seconds.
pub const KEY_WATCH_ENV: &str = "HEADLOCK_KEY_WATCH_INTERVAL_SECS";
/// The longest interval either variable accepts (a day), in seconds.
pub const MAX_INTERVAL_SECS: u64 = 86_400;

impl Maintenance {
    /// The defaults, with the key lifecycle intervals taken from
    /// `HEADLOCK_KEY_SCHEDULE_INTERVAL_SECS` and `HEADLOCK_KEY_WATCH_INTERVAL_SECS` when
    /// set (whole seconds, 1 to 86400). An unusable value is an error naming the
    /// variable.
    pub fn from_env() -> Result<Maintenance, String> {
        let mut m = Maintenance::default();
        for (var, field) in [
            (KEY_SCHEDULE_ENV, &mut m.key_schedule_every),
            (KEY_WATCH_ENV, &mut m.key_watch_every),
        ] {
            if let Some(d) = headlock_core::env::seconds(var, MAX_INTERVAL_SECS)? {
                *field = d;
            }
        }
        Ok(m)
    }
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            reconcile_every: Duration::from_secs(30),
            gc_every: Duration::from_secs(600),
            reencrypt_every: Duration::from_secs(30),
            key_schedule_every: Duration::from_secs(60),
            key_watch_every: Duration::from_secs(60),
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
        let mut schedule_tick = tokio::time::interval(schedule.key_schedule_every);
        let mut watch_tick = tokio::time::interval(schedule.key_watch_every);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        schedule_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Its first tick is immediate: jobs a crash or a restart interrupted resume at once.
        let mut reencrypt = tokio::time::interval(schedule.reencrypt_every);
        reencrypt.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = schedule_tick.tick() => {
                    self.lifecycle_job("job:schedule", |s| Box::pin(async move {
                        s.rotate_due_keys().await.map(|r| format!("{r:?}"))
                    })).await;
                    self.lifecycle_job("job:destroy", |s| Box::pin(async move {
                        s.destroy_retired_keys().await.map(|r| format!("{r:?}"))
                    })).await;
                }
                _ = watch_tick.tick() => {
                    self.lifecycle_job("job:watch", |s| Box::pin(async move {
                        s.watch_key_states().await.map(|r| format!("{r:?}"))
                    })).await;
                }
                _ = reencrypt.tick() => {
                    match self.resume_reencryption_jobs().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(jobs = n, "resuming re-encryption jobs"),
                        Err(e) => tracing::warn!(error = %e, "cannot look for re-encryption jobs to resume"),
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

impl Service {
    /// Runs one key lifecycle job under the lease `lease`, if no other node holds it.
    async fn lifecycle_job<F>(&self, lease: &str, job: F)
    where
        F: for<'a> FnOnce(
            &'a Service,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = crate::Result<String>> + Send + 'a>,
        >,
    {
        match self.try_lease(lease.to_string()).await {
            Ok(Some(_lease)) => match job(self).await {
                Ok(report) => tracing::debug!(job = lease, %report, "key lifecycle job"),
                Err(e) => tracing::warn!(job = lease, error = %e, "key lifecycle job failed"),
            },
            Ok(None) => tracing::debug!(job = lease, "runs on another node"),
            Err(e) => tracing::warn!(job = lease, error = %e, "cannot take the job's lease"),
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
