//! [`HealthMonitor`]: what `/health` and `/ready` answer, checked in the background.
//!
//! Every few seconds the monitor pings the metadata store and probes each KMIP server
//! on its own ([`KeyManager::probe_servers`]); the endpoints only read the latest
//! [`HealthReport`], so a burst of health checks never reaches the database or the KMIP
//! servers. Checks never overlap, and each is bounded in time ([`CHECK_TIMEOUT`] for the
//! database, the key manager's own limit per KMIP server, [`CHECK_TIMEOUT`] twice over
//! for all of them).
//!
//! The report says "degraded" when the database or any KMIP server failed its check, and
//! "ready" when the database answered and at least one KMIP server did (a key manager
//! with no server to probe counts as reachable). It holds no secrets: database failures
//! are reported as a short fixed text (the details go to the log, once per change), KMIP
//! failures as the client's error, which names the server, the operation and the reason.
//!
//! The gauges `headlock_database_up` and `headlock_kmip_server_up{server}` follow each
//! check (see [`crate::metrics`]).
//!
//! ```no_run
//! # async fn demo(service: headlock_service::Service) {
//! use std::time::Duration;
//! use headlock_service::health::HealthMonitor;
//! let monitor = HealthMonitor::spawn(&service, Duration::from_secs(5));
//! // ... later, in a handler:
//! if let Some(report) = monitor.report() {
//!     println!("ready: {:?}", report.readiness());
//! }
//! # }
//! ```

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use headlock_core::{KeyManager, MetadataStore, ServerProbe};
use time::OffsetDateTime;

use crate::error::Denied;
use crate::{Actor, Service};

/// Time allowed to the database ping; the whole KMIP probe gets twice this.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The default time between two checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The database's part of a [`HealthReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseHealth {
    /// Whether it answered the ping.
    pub ok: bool,
    /// How long the ping took, when it answered.
    pub latency: Option<Duration>,
    /// Why it failed, as a short fixed text (no driver message: that goes to the log).
    pub error: Option<&'static str>,
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// This node's id.
    pub node: String,
    /// The metadata database.
    pub database: DatabaseHealth,
    /// Each configured KMIP server, in configuration order.
    pub kmip_servers: Vec<ServerProbe>,
    /// When the check finished.
    pub checked_at: OffsetDateTime,
}

impl HealthReport {
    /// True when the database or some KMIP server failed its check.
    pub fn degraded(&self) -> bool {
        !self.database.ok || self.kmip_servers.iter().any(|s| !s.reachable)
    }

    /// `Ok` when this node can serve: the database answered and at least one KMIP
    /// server is reachable (or the key manager has none to probe); otherwise why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if !self.database.ok {
            return Err("the metadata database did not answer");
        }
        if !self.kmip_servers.is_empty() && !self.kmip_servers.iter().any(|s| s.reachable) {
            return Err("no KMIP server is reachable");
        }
        Ok(())
    }
}

/// Checks the database and the KMIP servers in the background and keeps the latest
/// [`HealthReport`]. Cheap to clone; the background task stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn MetadataStore>,
    keys: Arc<dyn KeyManager>,
    node: String,
    latest: Mutex<Option<HealthReport>>,
    /// Held for the length of a check, so that checks never overlap.
    checking: tokio::sync::Mutex<()>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl HealthMonitor {
    /// A monitor of `service`'s database and key manager that has not checked anything
    /// yet ([`HealthMonitor::report`] is `None` until [`HealthMonitor::check_now`]).
    pub fn new(service: &Service) -> Self {
        HealthMonitor {
            inner: Arc::new(Inner {
                store: service.store.clone(),
                keys: service.keys.clone(),
                node: service.node_id.to_string(),
                latest: Mutex::new(None),
                checking: tokio::sync::Mutex::new(()),
                task: Mutex::new(None),
            }),
        }
    }

    /// A monitor that checks at once, then every `interval` (at least one second), on
    /// the current tokio runtime, until the last clone is dropped.
    pub fn spawn(service: &Service, interval: Duration) -> Self {
        let monitor = HealthMonitor::new(service);
        let interval = interval.max(Duration::from_secs(1));
        let weak: Weak<Inner> = Arc::downgrade(&monitor.inner);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                HealthMonitor { inner }.check_now().await;
            }
        });
        *monitor.inner.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        monitor
    }

    /// The id of the node this monitor reports on.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The latest report with everything in it (node id, KMIP server addresses, error
    /// texts), for an authenticated operator: a user with a global role (others get
    /// `USER_UNAUTHORIZED`). What anyone may see is a summary without those, which the
    /// API layer cuts from [`Self::report`].
    pub fn detailed_report(&self, actor: &Actor) -> crate::Result<Option<HealthReport>> {
        if !actor.is_global() {
            return Err(Denied::Forbidden.into());
        }
        Ok(self.report())
    }

    /// The latest report, or `None` before the first check has finished.
    pub fn report(&self) -> Option<HealthReport> {
        self.inner
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Checks now (after any check in progress), keeps and returns the report.
    pub async fn check_now(&self) -> HealthReport {
        let _checking = self.inner.checking.lock().await;
        let ((database, db_detail), kmip_servers) =
            tokio::join!(self.check_database(), self.check_kmip());
        let report = HealthReport {
            node: self.inner.node.clone(),
            database,
            kmip_servers,
            checked_at: OffsetDateTime::now_utc(),
        };
        record_gauges(&report);
        let previous = self
            .inner
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(report.clone());
        log_changes(previous.as_ref(), &report, db_detail.as_deref());
        report
    }

    /// The database's health, and the store's error text for the log.
    async fn check_database(&self) -> (DatabaseHealth, Option<String>) {
        let started = Instant::now();
        match tokio::time::timeout(CHECK_TIMEOUT, self.inner.store.ping()).await {
            Ok(Ok(())) => (
                DatabaseHealth {
                    ok: true,
                    latency: Some(started.elapsed()),
                    error: None,
                },
                None,
            ),
            Ok(Err(e)) => (
                DatabaseHealth {
                    ok: false,
                    latency: None,
                    error: Some("the database did not answer"),
                },
                Some(e.to_string()),
            ),
            Err(_) => (
                DatabaseHealth {
                    ok: false,
                    latency: None,
                    error: Some("the database did not answer in time"),
                },
                Some(format!("no answer to a ping within {CHECK_TIMEOUT:?}")),
            ),
        }
    }

    async fn check_kmip(&self) -> Vec<ServerProbe> {
        // The key manager bounds each server's probe; this bounds a key manager that
        // does not.
        match tokio::time::timeout(2 * CHECK_TIMEOUT, self.inner.keys.probe_servers()).await {
            Ok(probes) => probes,
            Err(_) => vec![ServerProbe {
                server: self.inner.keys.describe(),
                reachable: false,
                latency: None,
                error: Some(format!(
                    "the key manager's probe did not finish within {:?}",
                    2 * CHECK_TIMEOUT
                )),
            }],
        }
    }
}

fn record_gauges(report: &HealthReport) {
    use crate::metrics::{DATABASE_UP, KMIP_SERVER_UP};
    ::metrics::gauge!(DATABASE_UP).set(f64::from(u8::from(report.database.ok)));
    for s in &report.kmip_servers {
        ::metrics::gauge!(KMIP_SERVER_UP, "server" => s.server.clone())
            .set(f64::from(u8::from(s.reachable)));
    }
}

/// Logs what changed since the previous check (so a server that stays down is logged
/// once, not every few seconds).
fn log_changes(previous: Option<&HealthReport>, now: &HealthReport, db_detail: Option<&str>) {
    let was_db_ok = previous.is_none_or(|p| p.database.ok);
    if was_db_ok && !now.database.ok {
        tracing::warn!(
            error = db_detail.unwrap_or_default(),
            "health: the metadata database is unavailable"
        );
    } else if !was_db_ok && now.database.ok {
        tracing::info!("health: the metadata database answers again");
    }
    for server in &now.kmip_servers {
        let was_reachable = previous
            .and_then(|p| p.kmip_servers.iter().find(|s| s.server == server.server))
            .is_none_or(|s| s.reachable);
        if was_reachable && !server.reachable {
            tracing::warn!(
                server = %server.server,
                error = server.error.as_deref().unwrap_or_default(),
                "health: KMIP server unreachable"
            );
        } else if !was_reachable && server.reachable {
            tracing::info!(server = %server.server, "health: KMIP server reachable again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(db: bool, servers: &[bool]) -> HealthReport {
        HealthReport {
            node: "node-1".into(),
            database: DatabaseHealth {
                ok: db,
                latency: db.then_some(Duration::from_micros(200)),
                error: (!db).then_some("the database did not answer"),
            },
            kmip_servers: servers
                .iter()
                .enumerate()
                .map(|(i, up)| ServerProbe {
                    server: format!("kmip{i}:5696"),
                    reachable: *up,
                    latency: up.then_some(Duration::from_millis(2)),
                    error: (!up).then(|| "refused".to_string()),
                })
                .collect(),
            checked_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn accepts_readiness_with_one_kmip_server_of_two() {
        let r = report(true, &[false, true]);
        assert_eq!(r.readiness(), Ok(()));
        assert!(r.degraded());
        let r = report(true, &[true, true]);
        assert_eq!(r.readiness(), Ok(()));
        assert!(!r.degraded());
    }

    #[test]
    fn accepts_readiness_of_a_key_manager_with_no_server_to_probe() {
        let r = report(true, &[]);
        assert_eq!(r.readiness(), Ok(()));
        assert!(!r.degraded());
    }

    #[test]
    fn rejects_readiness_without_database_or_kmip_server() {
        assert_eq!(
            report(false, &[true]).readiness(),
            Err("the metadata database did not answer")
        );
        assert!(report(false, &[true]).degraded());
        assert_eq!(
            report(true, &[false, false]).readiness(),
            Err("no KMIP server is reachable")
        );
    }
}
