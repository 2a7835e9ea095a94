//! Every change the console makes, in two steps: `GET .../confirm?action=...` shows a
//! page that names exactly what will happen, with a form that `POST`s it (with the
//! session's CSRF token, [`super::session::Posted`]) to `.../do`. Each action calls the
//! service method the JSON API's handler calls, with the signed-in user as the actor:
//! the service checks the role (a read-only user's `POST` is refused with 403 as the
//! API refuses it), the console only hides the buttons.
//!
//! | action | service call (JSON route) |
//! |---|---|
//! | `enable-encryption` | `patch_backup_config` (`PATCH .../backupConfigs/{C}`, `encryptionEnabled`) |
//! | `rotate` | `rotate_encryption_key` (`PUT .../encryptionKey`), one part or a whole sharded cluster |
//! | `schedule` | `patch_backup_config` (`encryptionKeyRotationPeriodDays`, `retiredKeyDestroyAfterDays`) |
//! | `compromised` | `report_compromise` (`POST .../encryptionKey/compromised`) |
//! | `keep-key` | `cancel_key_destruction` (`POST .../encryptionKeys/{UUID}/restore`) |
//! | `delete-snapshot` | `delete_snapshot` (`DELETE .../snapshots/{S}`) |
//! | `restore` | `create_restore_job` (`POST .../restoreJobs`) |

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use headlock_service::clusters::BackupConfigPatch;

use super::pages::{display_name, with};
use super::session::Posted;
use super::{E, PAGE, Result, Session, bad, date, page, see_other, size};
use crate::AppState;
use crate::routes::Routes;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/g/{group_id}/c/{cluster_id}/confirm", confirm)
        .post("/g/{group_id}/c/{cluster_id}/do", act)
}

/// `0` (off) to 3650 days, as the service accepts.
fn days(session: &Session, v: &str, what: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|d| (0..=3650).contains(d))
        .ok_or_else(|| {
            bad(
                session,
                &format!("{what} is a number of days from 0 (off) to 3650."),
            )
        })
}

fn days_text(d: i64) -> String {
    if d == 0 {
        "never (off)".into()
    } else if d == 1 {
        "1 day".into()
    } else {
        format!("{d} days")
    }
}

async fn confirm(
    State(s): State<AppState>,
    session: Session,
    Path((group_id, cluster_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let actor = &session.actor;
    let c = with(
        &session,
        s.service.cluster(actor, &group_id, &cluster_id).await,
    )?;
    // The same rule, and the same 403, as the POST gets from the service.
    with(&session, actor.require_backup_admin(c.group_id))?;
    let name = E(display_name(&c)).to_string();
    let field = |k: &str| q.get(k).map_or("", String::as_str);
    let action = field("action");
    let mut hidden = vec![("action", action.to_string())];
    let (title, what, danger) = match action {
        "enable-encryption" => (
            "Enable encryption",
            format!(
                "Turn encryption on for <strong>{name}</strong>: a master key is created in the KMIP server for {}, and every snapshot taken from now on is encrypted under a data key it wraps.",
                if c.is_sharded_whole() {
                    "every shard and the config server replica set"
                } else {
                    "it"
                }
            ),
            false,
        ),
        "rotate" => {
            let detail = if c.is_sharded_whole() {
                let (parts, _) = with(
                    &session,
                    s.service
                        .list_clusters(actor, &group_id, Some(&cluster_id), PAGE)
                        .await,
                )?;
                let names: Vec<String> = parts
                    .iter()
                    .map(|p| E(display_name(p)).to_string())
                    .collect();
                format!(
                    "Rotate the master key of <strong>every part of {name}</strong> ({}): each part gets a new master key in the KMIP server, its data keys are re-wrapped under it, and its current key is retired.",
                    names.join(", ")
                )
            } else {
                let key = with(
                    &session,
                    s.service
                        .encryption_key(actor, &group_id, &cluster_id)
                        .await,
                )?;
                format!(
                    "Rotate the master key of <strong>{name}</strong>: a new master key is created in the KMIP server, every data key is re-wrapped under it, and the current key <code>{}</code> is retired (it is destroyed later only if a retirement delay is set).",
                    E(key
                        .encryption_key_uuid
                        .as_ref()
                        .map(|k| k.as_str())
                        .unwrap_or("-"))
                )
            };
            ("Rotate the master key", detail, false)
        }
        "schedule" => {
            let r = days(&session, field("rotation_days"), "The rotation period")?;
            let d = days(&session, field("destroy_days"), "The retirement delay")?;
            hidden.push(("rotation_days", r.to_string()));
            hidden.push(("destroy_days", d.to_string()));
            (
                "Change the rotation schedule",
                format!(
                    "For <strong>{name}</strong>: rotate the master key automatically every <strong>{}</strong>, and destroy a retired master key in the KMIP server <strong>{}</strong> after its retirement.",
                    E(days_text(r)),
                    E(if d == 0 {
                        "never (off)".to_string()
                    } else {
                        days_text(d)
                    })
                ),
                false,
            )
        }
        "compromised" => (
            "Declare the master key compromised",
            format!(
                "Declare the master key of <strong>{name}</strong>{} compromised: it is revoked in the KMIP server as compromised, a new master key replaces it, and a re-encryption job rewrites every snapshot under a new data key. The old data keys are destroyed when the job finishes. This cannot be undone.",
                if c.is_sharded_whole() {
                    " (every shard and the config server replica set)"
                } else {
                    ""
                }
            ),
            true,
        ),
        "keep-key" => {
            let key = field("key");
            hidden.push(("key", key.to_string()));
            (
                "Cancel a scheduled destruction",
                format!(
                    "Cancel the scheduled destruction of the retired master key <code>{}</code> of <strong>{name}</strong>: it is kept in the KMIP server for good.",
                    E(key)
                ),
                false,
            )
        }
        "delete-snapshot" | "restore" => {
            let id = field("snapshot");
            let v = with(
                &session,
                s.service.snapshot(actor, &group_id, &cluster_id, id).await,
            )?;
            hidden.push(("snapshot", id.to_string()));
            let desc = format!(
                "snapshot <code>{}</code> of <strong>{name}</strong> (taken {}, {} of data)",
                E(v.record.id),
                date(v.record.created),
                size(v.record.data_size_bytes)
            );
            if action == "restore" {
                (
                    "Restore a snapshot",
                    format!(
                        "Create a restore job for {desc}: a one-time download link is made, valid for {} hours; anyone who has the link can download the snapshot's bytes.",
                        headlock_service::snapshots::RESTORE_LINK_HOURS
                    ),
                    false,
                )
            } else {
                (
                    "Delete a snapshot",
                    format!(
                        "Delete {desc}: its data is removed from the store. This cannot be undone."
                    ),
                    true,
                )
            }
        }
        _ => return Err(bad(&session, "Unknown action.")),
    };
    let mut fields = session.csrf_field();
    for (k, v) in &hidden {
        fields.push_str(&super::hidden(k, v));
    }
    let back = format!("/g/{}/c/{}", c.group_id, c.id);
    let body = format!(
        "<section class=\"confirm\"><h1>{title}</h1><p id=\"what\">{what}</p>\
         <form method=\"post\" action=\"{back}/do\">{fields}\
         <button type=\"submit\" id=\"confirm\" class=\"action{}\">{title}</button> <a href=\"{back}\" id=\"cancel\">Cancel</a></form></section>",
        if danger { " danger" } else { "" },
        title = E(title),
    );
    Ok(page(title, Some(&session), &body))
}

async fn act(
    State(s): State<AppState>,
    Path((group_id, cluster_id)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response> {
    let session = &posted.session;
    let actor = &session.actor;
    let back = format!(
        "/g/{}/c/{}",
        E(group_id.to_ascii_lowercase()),
        E(cluster_id.to_ascii_lowercase())
    );
    match posted.field("action") {
        action @ ("enable-encryption" | "schedule") => {
            let patch = if action == "schedule" {
                BackupConfigPatch {
                    rotation_period_days: Some(days(
                        session,
                        posted.field("rotation_days"),
                        "The rotation period",
                    )?),
                    retired_key_destroy_after_days: Some(days(
                        session,
                        posted.field("destroy_days"),
                        "The retirement delay",
                    )?),
                    ..BackupConfigPatch::default()
                }
            } else {
                BackupConfigPatch {
                    encryption_enabled: Some(true),
                    ..BackupConfigPatch::default()
                }
            };
            with(
                session,
                s.service
                    .patch_backup_config(actor, &group_id, &cluster_id, patch)
                    .await,
            )?;
        }
        "rotate" => {
            with(
                session,
                s.service
                    .rotate_encryption_key(actor, &group_id, &cluster_id)
                    .await,
            )?;
        }
        "compromised" => {
            with(
                session,
                s.service
                    .report_compromise(actor, &group_id, &cluster_id)
                    .await,
            )?;
        }
        "keep-key" => {
            with(
                session,
                s.service
                    .cancel_key_destruction(actor, &group_id, &cluster_id, posted.field("key"))
                    .await,
            )?;
        }
        "delete-snapshot" => {
            with(
                session,
                s.service
                    .delete_snapshot(actor, &group_id, &cluster_id, posted.field("snapshot"))
                    .await,
            )?;
        }
        "restore" => {
            let (job, token) = with(
                session,
                s.service
                    .create_restore_job(actor, &group_id, &cluster_id, posted.field("snapshot"))
                    .await,
            )?;
            let link = super::cluster::download_path(&job, &token);
            let body = format!(
                "<section class=\"confirm\"><h1>Restore job created</h1>\
                 <p>Snapshot <code>{snap}</code> is ready to download through this one-time link, valid until {until} and for {max} download(s):</p>\
                 <p class=\"link\"><a href=\"{link}\" download id=\"download\">Download the snapshot</a><br><code id=\"link\">{link}</code></p>\
                 <p class=\"muted\">The link is a credential: whoever has it can download the data. It also stays listed on the cluster's page, to backup admins, until it is used or expires.</p>\
                 <p><a href=\"{back}\" id=\"back\">Back to the cluster</a></p></section>",
                snap = E(job.snapshot_id),
                until = date(job.expires),
                max = job.max_downloads,
                link = E(link),
            );
            return Ok(page("Restore job created", Some(session), &body));
        }
        _ => return Err(bad(session, "Unknown action.")),
    }
    Ok(see_other(&back))
}
