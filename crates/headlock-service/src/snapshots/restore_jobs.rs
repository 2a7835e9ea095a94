//! Restore jobs and their one-time download links (the download itself: `restore.rs`).

use headlock_core::ObjectId;
use headlock_core::model::{Page, RestoreJob};

use crate::error::{NotFound, RequestedId};
use crate::{Actor, Result, Service};

/// How long a restore link works.
pub const RESTORE_LINK_HOURS: i64 = 1;

impl Service {
    /// Creates a restore job for a snapshot; returns it and its one-time download token
    /// (an HMAC of the job id under the link secret; only its SHA-256 is stored).
    pub async fn create_restore_job(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
    ) -> Result<(RestoreJob, String)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await?;
        let record = self.snapshot_record(&cluster, snapshot_id).await?;
        let id = ObjectId::new();
        let token = self.link_token(id);
        let now = crate::now();
        let job = RestoreJob {
            id,
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            snapshot_id: record.id,
            created: now,
            expires: now + time::Duration::hours(RESTORE_LINK_HOURS),
            token_sha256: ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
                .as_ref()
                .to_vec(),
            max_downloads: 1,
            downloads: 0,
            requested_by: actor.username.clone(),
        };
        self.store.insert_restore_job(&job).await?;
        let event = actor.event(
            "RESTORE_REQUESTED",
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!("restore job {} of snapshot {}", job.id, record.id)),
        );
        self.store.append_audit(&event).await?;
        Ok((job, token))
    }

    /// One restore job, with its download token while the link can still be used (Ops
    /// Manager shows a job's delivery URL until it is used or expires), and only to a
    /// caller who may create restore jobs in the group: the token is the credential of
    /// the download, so a read-only user must not see it.
    pub async fn restore_job(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        job_id: &str,
    ) -> Result<(RestoreJob, Option<String>)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let id: ObjectId = job_id.parse().map_err(|_| {
            NotFound::RestoreJob(RequestedId::Invalid(crate::groups::truncate(job_id)))
        })?;
        let job = self
            .store
            .restore_job(cluster.id, id)
            .await?
            .ok_or_else(|| NotFound::RestoreJob(id.into()))?;
        let token = self.usable_link(actor, &job);
        Ok((job, token))
    }

    /// A page of a cluster's restore jobs, each with its token while usable and only for
    /// a caller who may create restore jobs (see [`Service::restore_job`]).
    pub async fn list_restore_jobs(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        page: Page,
    ) -> Result<(Vec<(RestoreJob, Option<String>)>, u64)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let (jobs, total) = self.store.list_restore_jobs(cluster.id, page).await?;
        let jobs = jobs
            .into_iter()
            .map(|j| {
                let token = self.usable_link(actor, &j);
                (j, token)
            })
            .collect();
        Ok((jobs, total))
    }

    /// The download token of a job: HMAC-SHA256 of its id under the service's link
    /// secret, so that the link can be shown again while it is usable without the token
    /// being stored anywhere.
    pub(super) fn link_token(&self, job: ObjectId) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.link_secret[..]);
        let mut msg = b"headlock restore link v1 ".to_vec();
        msg.extend_from_slice(&job.bytes());
        hex::encode(ring::hmac::sign(&key, &msg).as_ref())
    }

    /// The job's token, if the link can still be used and `actor` may create restore
    /// jobs in its group (the rights [`Service::create_restore_job`] asks for).
    fn usable_link(&self, actor: &Actor, job: &RestoreJob) -> Option<String> {
        (actor.can_admin_backup(job.group_id)
            && job.downloads < job.max_downloads
            && crate::now() <= job.expires)
            .then(|| self.link_token(job.id))
    }
}
