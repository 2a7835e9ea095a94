//! One cluster: backup and encryption state, the rotation schedule, the master-key
//! timeline and history, snapshots with their sizes and keys, restore jobs (with their
//! one-time links, to the users who may see them) and re-encryption jobs with their
//! progress. A whole sharded cluster shows its parts as a tree (each part has its own
//! keys and snapshots, on its own page) and the actions that apply to all of them.
//!
//! Actions are buttons that lead to a confirmation page ([`super::actions`]); a user who
//! may not change the group sees none.

use axum::extract::{Path, State};
use axum::response::Response;
use headlock_core::model::{Cluster, RetiredKeyFate};

use super::pages::{display_name, encryption_badge, kind, with};
use super::{E, PAGE, Result, Session, date, page, size};
use crate::AppState;
use crate::routes::Routes;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new().get("/g/{group_id}/c/{cluster_id}", cluster)
}

/// A button that opens the confirmation page of `action` (a `GET` form: nothing
/// changes until the confirmation is posted).
pub(crate) fn action_button(
    base: &str,
    action: &str,
    params: &[(&str, &str)],
    label: &str,
    danger: bool,
) -> String {
    let mut hidden = super::hidden("action", action);
    for (k, v) in params {
        hidden.push_str(&super::hidden(k, v));
    }
    let id = match params.iter().find(|(k, _)| *k == "snapshot" || *k == "key") {
        Some((_, v)) => format!("{action}-{v}"),
        None => action.to_string(),
    };
    format!(
        "<form method=\"get\" action=\"{base}/confirm\" class=\"inline\">{hidden}<button type=\"submit\" class=\"action{}{}\" id=\"{}\">{}</button></form>",
        if danger { " danger" } else { "" },
        if params.is_empty() { "" } else { " small" },
        E(id),
        E(label)
    )
}

async fn cluster(
    State(s): State<AppState>,
    session: Session,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response> {
    let actor = &session.actor;
    let c = with(
        &session,
        s.service.cluster(actor, &group_id, &cluster_id).await,
    )?;
    let group = with(&session, s.service.groups().group(actor, &group_id).await)?;
    let config = with(
        &session,
        s.service.backup_config(actor, &group_id, &cluster_id).await,
    )?;
    let lifecycle = with(&session, s.service.key_lifecycle_view(&config).await)?;
    let admin = actor.can_admin_backup(c.group_id);
    let g = c.group_id;
    let base = format!("/g/{g}/c/{}", c.id);

    let mut crumbs = format!(
        "<a href=\"/\">Groups</a> / <a href=\"/g/{g}\">{}</a> / ",
        E(&group.group.name)
    );
    let parent = match c.parent_cluster_id {
        Some(p) => Some(with(
            &session,
            s.service.cluster(actor, &group_id, &p.to_string()).await,
        )?),
        None => None,
    };
    if let Some(p) = &parent {
        crumbs.push_str(&format!(
            "<a href=\"/g/{g}/c/{}\">{}</a> / ",
            p.id,
            E(&p.cluster_name)
        ));
    }
    crumbs.push_str(&E(display_name(&c)).to_string());
    let mut body = format!(
        "<p class=\"crumbs\">{crumbs}</p><h1>{} <small>{}</small></h1>",
        E(display_name(&c)),
        kind(&c)
    );

    // Backup and encryption state.
    let settings = &lifecycle.settings;
    let every = |days: u32, what: &str| {
        if days == 0 {
            "off".to_string()
        } else {
            format!("{what} {days} days")
        }
    };
    body.push_str(&format!(
        "<section><h2>Backup and encryption</h2><dl class=\"facts\" id=\"state\">\
         <dt>Backup</dt><dd>{status}</dd><dt>Encryption</dt><dd>{enc}</dd>\
         <dt>Master key</dt><dd>{key_status}</dd>\
         <dt>Last rotation</dt><dd>{last}</dd><dt>Next scheduled rotation</dt><dd id=\"next-rotation\">{next}</dd>\
         <dt>Rotation schedule</dt><dd id=\"schedule\">{period}</dd><dt>Retired keys destroyed</dt><dd id=\"retirement\">{grace}</dd></dl>",
        status = E(config.status.as_str()),
        enc = encryption_badge(Some(&config)),
        key_status = match (&lifecycle.key_error, lifecycle.has_key) {
            (Some(e), _) => format!("<span class=\"badge bad\">ERROR</span> <span class=\"error\" id=\"key-error\">{}</span>", E(e)),
            (None, true) => "<span class=\"badge ok\">ACTIVE</span>".into(),
            (None, false) => "none yet".into(),
        },
        last = lifecycle.last_rotation.map(date).unwrap_or_else(|| "-".into()),
        next = lifecycle.next_rotation.map(date).unwrap_or_else(|| "none scheduled".into()),
        period = every(settings.rotation_period_days, "every"),
        grace = every(settings.retired_key_destroy_after_days, "after"),
    ));
    if admin {
        body.push_str("<div class=\"actions\" id=\"actions\">");
        if !config.encryption_enabled {
            body.push_str(&action_button(
                &base,
                "enable-encryption",
                &[],
                "Enable encryption",
                false,
            ));
        } else {
            let (rotate, compromise) = if c.is_sharded_whole() {
                (
                    "Rotate every part's master key",
                    "Declare every part's key compromised",
                )
            } else {
                ("Rotate the master key", "Declare the key compromised")
            };
            body.push_str(&action_button(&base, "rotate", &[], rotate, false));
            body.push_str(&action_button(&base, "compromised", &[], compromise, true));
        }
        body.push_str(&format!(
            "<form method=\"get\" action=\"{base}/confirm\" class=\"schedule\" id=\"schedule-form\">\
             <input type=\"hidden\" name=\"action\" value=\"schedule\">\
             <label>Rotate every <input type=\"number\" name=\"rotation_days\" id=\"rotation_days\" min=\"0\" max=\"3650\" value=\"{}\"> days</label>\
             <label>destroy retired keys after <input type=\"number\" name=\"destroy_days\" id=\"destroy_days\" min=\"0\" max=\"3650\" value=\"{}\"> days</label>\
             <span class=\"hint\">0 turns either off</span>\
             <button type=\"submit\" class=\"action\" id=\"schedule-button\">Change schedule</button></form>",
            settings.rotation_period_days, settings.retired_key_destroy_after_days
        ));
        body.push_str("</div>");
    }
    body.push_str("</section>");

    if c.is_sharded_whole() {
        let (parts, _) = with(
            &session,
            s.service
                .list_clusters(actor, &group_id, Some(&cluster_id), PAGE)
                .await,
        )?;
        body.push_str(&parts_tree(&c, &parts));
    } else {
        body.push_str(&keys_section(&s, &session, &group_id, &c, &base, admin).await?);
        body.push_str(&snapshots_section(&s, &session, &group_id, &c, &base, admin).await?);
        body.push_str(&restore_jobs_section(&s, &session, &group_id, &c).await?);
    }
    body.push_str(&reencryption_section(&s, &session, &group_id, &c).await?);
    Ok(page(&display_name(&c), Some(&session), &body))
}

fn parts_tree(whole: &Cluster, parts: &[Cluster]) -> String {
    let mut parts: Vec<&Cluster> = parts.iter().collect();
    parts.sort_by_key(|p| (p.shard_name.is_none(), display_name(p)));
    let mut out = format!(
        "<section><h2>Parts</h2><ul class=\"tree\" id=\"parts\"><li><strong>{}</strong><ul>",
        E(&whole.cluster_name)
    );
    for p in parts {
        out.push_str(&format!(
            "<li><a href=\"/g/{}/c/{}\">{}</a> <span class=\"muted\">{} · replica set {}</span></li>",
            p.group_id,
            p.id,
            E(display_name(p)),
            kind(p),
            E(p.replica_set_name.as_deref().unwrap_or("-"))
        ));
    }
    out.push_str("</ul></li></ul><p class=\"note\">Each part has its own master key, timeline and snapshots: open it to see them.</p></section>");
    out
}

async fn keys_section(
    s: &AppState,
    session: &Session,
    group_id: &str,
    c: &Cluster,
    base: &str,
    admin: bool,
) -> Result<String> {
    let history = with(
        session,
        s.service
            .key_history(&session.actor, group_id, &c.id.to_string())
            .await,
    )?;
    let config = with(
        session,
        s.service
            .backup_config(&session.actor, group_id, &c.id.to_string())
            .await,
    )?;
    let lifecycle = with(session, s.service.key_lifecycle_view(&config).await)?;
    let mut out = String::from("<section><h2>Master-key timeline</h2>");
    if history.is_empty() {
        out.push_str(
            "<p class=\"empty\">No master key yet: enable encryption to create one.</p></section>",
        );
        return Ok(out);
    }
    out.push_str(&super::timeline::svg(
        &history,
        lifecycle.next_rotation,
        time::OffsetDateTime::now_utc(),
    ));
    out.push_str(
        "<table class=\"list\" id=\"keys\"><thead><tr><th>Key</th><th>Created → retired</th><th>Rotation</th><th>Asked by</th><th>KMIP state</th><th class=\"num\">Data keys</th><th class=\"num\">Snapshots</th><th>Destruction</th></tr></thead><tbody>",
    );
    for h in &history {
        let k = &h.key;
        let fate = h.fate.as_ref();
        let destruction = match (fate.map(|f| f.fate), h.scheduled_destruction) {
            (Some(RetiredKeyFate::Destroyed), _) => format!(
                "destroyed {}",
                fate.map(|f| date(f.changed)).unwrap_or_default()
            ),
            (Some(RetiredKeyFate::Destroying), _) => "being destroyed".into(),
            (Some(RetiredKeyFate::Kept), _) => "cancelled: kept".into(),
            (None, Some(at)) => {
                let mut cell = format!("scheduled<br>{}", date(at));
                if admin {
                    cell.push_str("<br>");
                    cell.push_str(&action_button(
                        base,
                        "keep-key",
                        &[("key", k.kmip_uid.as_str())],
                        "Cancel destruction",
                        false,
                    ));
                }
                cell
            }
            (None, None) if k.retired.is_some() => "not scheduled".into(),
            (None, None) => "-".into(),
        };
        let state = match (h.state, &h.state_error) {
            (_, _) if fate.is_some_and(|f| f.fate == RetiredKeyFate::Destroyed) => {
                "Destroyed".to_string()
            }
            (Some(st), _) => E(st.as_str()).to_string(),
            (None, Some(e)) => format!("<span class=\"error\">unknown: {}</span>", E(e)),
            (None, None) => "unknown".into(),
        };
        out.push_str(&format!(
            "<tr><td class=\"uid\"><code>{uid}</code></td><td class=\"when\">{created}<br>→ {retired}</td><td>{rt}</td><td>{by}</td><td>{state}</td><td class=\"num\">{dk}</td><td class=\"num\">{sn}</td><td class=\"fate\">{destruction}</td></tr>",
            uid = E(&k.kmip_uid),
            created = date(k.created),
            retired = k.retired.map(date).unwrap_or_else(|| "current".into()),
            rt = E(k.rotation_type.as_str()),
            by = E(&k.requested_by),
            dk = h.data_keys,
            sn = h.snapshots,
        ));
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

async fn snapshots_section(
    s: &AppState,
    session: &Session,
    group_id: &str,
    c: &Cluster,
    base: &str,
    admin: bool,
) -> Result<String> {
    let (snapshots, total) = with(
        session,
        s.service
            .list_snapshots(&session.actor, group_id, &c.id.to_string(), PAGE)
            .await,
    )?;
    let mut out = format!("<section><h2>Snapshots <small>{total}</small></h2>");
    if snapshots.is_empty() {
        out.push_str("<p class=\"empty\">No snapshot yet (<code>headlock backup</code> takes one).</p></section>");
        return Ok(out);
    }
    out.push_str("<table class=\"list\" id=\"snapshots\"><thead><tr><th>Snapshot</th><th>Taken</th><th>Kind</th><th class=\"num\">Data</th><th class=\"num\">Stored</th><th>Master key</th><th>Expires</th>");
    if admin {
        out.push_str("<th></th>");
    }
    out.push_str("</tr></thead><tbody>");
    for v in &snapshots {
        let r = &v.record;
        let id = r.id.to_string();
        out.push_str(&format!(
            "<tr><td class=\"id\"><code>{id}</code></td><td class=\"when\">{taken}</td><td>{kind}</td><td class=\"num\" title=\"{data_b} bytes\">{data}</td><td class=\"num\" title=\"{stored_b} bytes\">{stored}</td><td class=\"uid\"><code>{key}</code></td><td>{expires}</td>",
            id = E(&id),
            taken = date(r.created),
            kind = E(r.kind.as_str()),
            data_b = r.data_size_bytes,
            data = size(r.data_size_bytes),
            stored_b = r.stored_size_bytes,
            stored = size(r.stored_size_bytes),
            key = E(v.master_key_uid.as_ref().map_or("-", |k| k.as_str())),
            expires = r.expires.map(date).unwrap_or_else(|| "never".into()),
        ));
        if admin {
            out.push_str("<td class=\"nowrap\">");
            out.push_str(&action_button(
                base,
                "restore",
                &[("snapshot", &id)],
                "Restore",
                false,
            ));
            out.push_str(&action_button(
                base,
                "delete-snapshot",
                &[("snapshot", &id)],
                "Delete",
                true,
            ));
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
    Ok(out)
}

async fn restore_jobs_section(
    s: &AppState,
    session: &Session,
    group_id: &str,
    c: &Cluster,
) -> Result<String> {
    let (jobs, _) = with(
        session,
        s.service
            .list_restore_jobs(&session.actor, group_id, &c.id.to_string(), PAGE)
            .await,
    )?;
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<String> = jobs
        .iter()
        .map(|(j, token)| {
            let link = match token {
                _ if j.downloads >= j.max_downloads => "downloaded".to_string(),
                _ if now > j.expires => "expired".to_string(),
                Some(t) => format!(
                    "<a href=\"{}\" download id=\"download-{}\">Download</a> <span class=\"muted\">until {}</span>",
                    E(download_path(j, t)),
                    j.id,
                    date(j.expires)
                ),
                None => "ready (link shown to backup admins)".into(),
            };
            format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td class=\"when\">{}</td><td>{}</td><td>{link}</td></tr>",
                j.id,
                j.snapshot_id,
                date(j.created),
                E(&j.requested_by)
            )
        })
        .collect();
    Ok(table_section(
        "Restore jobs",
        "restore-jobs",
        "None.",
        &["Job", "Snapshot", "Created", "Asked by", "Link"],
        &rows,
    ))
}

/// A section with a title and a table of `rows`, or `empty` when there is none.
fn table_section(title: &str, id: &str, empty: &str, head: &[&str], rows: &[String]) -> String {
    let mut out = format!("<section><h2>{}</h2>", E(title));
    if rows.is_empty() {
        out.push_str(&format!("<p class=\"empty\">{}</p></section>", E(empty)));
        return out;
    }
    out.push_str(&format!(
        "<table class=\"list\" id=\"{}\"><thead><tr>",
        E(id)
    ));
    for h in head {
        out.push_str(&format!("<th>{}</th>", E(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table></section>");
    out
}

/// The delivery link of a restore job, on this origin (`/backup/restore/...`).
pub(crate) fn download_path(j: &headlock_core::model::RestoreJob, token: &str) -> String {
    format!("/backup/restore/{}/{}/{token}", j.cluster_id, j.id)
}

async fn reencryption_section(
    s: &AppState,
    session: &Session,
    group_id: &str,
    c: &Cluster,
) -> Result<String> {
    let (jobs, _) = with(
        session,
        s.service
            .list_reencryption_jobs(&session.actor, group_id, &c.id.to_string(), PAGE)
            .await,
    )?;
    let rows: Vec<String> = jobs.iter().map(|j| {
        let pct = match j.bytes_done.saturating_mul(100).checked_div(j.bytes_total) {
            Some(p) => p.min(100),
            None if j.finished.is_some() => 100,
            None => 0,
        };
        let status_class = match j.status.as_str() {
            "FINISHED" => "ok",
            "FAILED" => "bad",
            _ => "run",
        };
        format!(
            "<tr><td><code>{id}</code></td><td><code>{part}</code></td><td><span class=\"badge {status_class} job-status\">{status}</span>{err}</td>\
             <td><progress max=\"100\" value=\"{pct}\"></progress> {done}/{total} snapshots, {bytes}</td><td class=\"nowrap\">{created}</td><td class=\"nowrap\">{finished}</td></tr>",
            id = j.id,
            part = j.cluster_id,
            status = E(j.status.as_str()),
            err = j.error.as_ref().map(|e| format!(" <span class=\"error\">{}</span>", E(e))).unwrap_or_default(),
            done = j.snapshots_done,
            total = j.snapshots_total,
            bytes = size(j.bytes_done),
            created = date(j.created),
            finished = j.finished.map(date).unwrap_or_else(|| "-".into()),
        )
    }).collect();
    Ok(table_section(
        "Re-encryption jobs",
        "reencryption-jobs",
        "None (a compromise starts one).",
        &["Job", "Part", "Status", "Progress", "Started", "Finished"],
        &rows,
    ))
}
