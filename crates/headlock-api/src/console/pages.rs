//! The groups, a group's clusters (a sharded cluster as a tree of its shards and config
//! server replica set, each with its backup status and encryption state) and the audit
//! events feed with the hash chain's verdict; creating a group (global owners) and
//! registering a cluster (the group's backup admins), through the service calls of
//! `POST /groups` and `POST /groups/{G}/clusters`. Neither destroys anything, so they
//! need no confirmation page; both carry the CSRF token ([`Posted`]).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::Response;
use headlock_core::ObjectId;
use headlock_core::model::{BackupConfig, Cluster, ClusterType};
use headlock_service::clusters::{NewCluster, NewShard};

use super::session::Posted;
use super::{E, PAGE, Result, Session, date, page, see_other};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/", groups)
        .post("/groups", create_group)
        .get("/g/{group_id}", group)
        .post("/g/{group_id}/clusters", register_cluster)
        .get("/g/{group_id}/events", events)
}

/// Attaches the session to a failure, for the navigation bar.
pub(crate) fn with<T>(
    session: &Session,
    r: std::result::Result<T, headlock_service::ServiceError>,
) -> Result<T> {
    r.map_err(|e| super::ConsoleError {
        error: Box::new(ApiError::from(e)),
        session: Some(Box::new(session.clone())),
    })
}

async fn groups(State(s): State<AppState>, session: Session) -> Result<Response> {
    let (groups, total) = with(
        &session,
        s.service.groups().list_groups(&session.actor, PAGE).await,
    )?;
    let mut body = String::from("<h1>Groups</h1>");
    if groups.is_empty() {
        body.push_str("<p class=\"empty\">No group you may read.</p>");
    } else {
        body.push_str(
            "<table class=\"list\" id=\"groups\"><thead><tr><th>Group</th><th>Id</th><th class=\"num\">Clusters</th><th>Created</th></tr></thead><tbody>",
        );
        for g in &groups {
            body.push_str(&format!(
                "<tr><td><a href=\"/g/{id}\">{name}</a></td><td><code>{id}</code></td><td class=\"num\">{n}</td><td>{created}</td></tr>",
                id = E(g.group.id),
                name = E(&g.group.name),
                n = g.cluster_count,
                created = date(g.group.created)
            ));
        }
        body.push_str("</tbody></table>");
        body.push_str(&super::more(groups.len(), total, "groups"));
    }
    if session.actor.require_global_owner().is_ok() {
        body.push_str(&format!(
            "<h2 class=\"section\">New group</h2><form method=\"post\" action=\"/groups\" class=\"schedule\" id=\"create-group-form\">{}\
             <label>Name <input name=\"name\" id=\"group-name\" required maxlength=\"64\"></label>\
             <button type=\"submit\" class=\"action\" id=\"create-group\">Create group</button></form>",
            session.csrf_field()
        ));
    }
    Ok(page("Groups", Some(&session), &body))
}

async fn create_group(State(s): State<AppState>, posted: Posted) -> Result<Response> {
    let session = &posted.session;
    let view = with(
        session,
        s.service
            .groups()
            .create_group(&session.actor, posted.field("name"))
            .await,
    )?;
    Ok(see_other(&format!("/g/{}", view.group.id)))
}

/// `shard replica-set` pairs, one per line (or separated by commas).
fn shards(text: &str) -> Option<Vec<NewShard>> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [shard, rs] => Some(NewShard {
                shard_name: shard.to_owned(),
                replica_set_name: rs.to_owned(),
            }),
            _ => None,
        })
        .collect()
}

async fn register_cluster(
    State(s): State<AppState>,
    Path(group_id): Path<String>,
    posted: Posted,
) -> Result<Response> {
    let session = &posted.session;
    let invalid = |detail: &str| super::bad(session, detail);
    let optional =
        |name: &str| Some(posted.field(name).trim().to_owned()).filter(|v| !v.is_empty());
    let new = match posted.field("type") {
        "REPLICA_SET" => NewCluster {
            cluster_name: posted.field("cluster_name").to_owned(),
            type_name: ClusterType::ReplicaSet,
            replica_set_name: optional("replica_set_name"),
            shards: Vec::new(),
            config_server_replica_set: None,
        },
        "SHARDED_REPLICA_SET" => NewCluster {
            cluster_name: posted.field("cluster_name").to_owned(),
            type_name: ClusterType::ShardedReplicaSet,
            replica_set_name: None,
            shards: shards(posted.field("shards")).ok_or_else(|| {
                invalid("Shards are one per line: the shard's name and its replica set's name.")
            })?,
            config_server_replica_set: optional("config_server"),
        },
        _ => return Err(invalid("The type is a replica set or a sharded cluster.")),
    };
    let clusters = with(
        session,
        s.service
            .register_cluster(&session.actor, &group_id, new)
            .await,
    )?;
    let top = clusters
        .iter()
        .find(|c| c.parent_cluster_id.is_none())
        .or(clusters.first())
        .ok_or_else(|| invalid("No cluster was registered."))?;
    Ok(see_other(&format!("/g/{}/c/{}", top.group_id, top.id)))
}

/// `typeName` as people say it.
pub(crate) fn kind(c: &Cluster) -> &'static str {
    match (c.type_name, c.shard_name.is_some(), c.parent_cluster_id) {
        (ClusterType::ShardedReplicaSet, _, None) => "sharded cluster",
        (_, true, _) => "shard",
        (_, false, Some(_)) => "config server replica set",
        _ => "replica set",
    }
}

/// The name a part goes by in the tree.
pub(crate) fn display_name(c: &Cluster) -> String {
    match (&c.shard_name, &c.replica_set_name) {
        (Some(shard), _) => shard.clone(),
        (None, Some(rs)) if c.parent_cluster_id.is_some() => rs.clone(),
        _ => c.cluster_name.clone(),
    }
}

/// The encryption cell of a cluster row.
pub(crate) fn encryption_badge(c: Option<&BackupConfig>) -> String {
    match c {
        Some(c) if c.encryption_enabled => "<span class=\"badge ok\">encrypted</span>".into(),
        Some(_) => "<span class=\"badge off\">off</span>".into(),
        None => "<span class=\"badge off\">-</span>".into(),
    }
}

fn cluster_row(
    g: ObjectId,
    c: &Cluster,
    configs: &HashMap<ObjectId, &BackupConfig>,
    depth: usize,
) -> String {
    let config = configs.get(&c.id).copied();
    format!(
        "<tr class=\"depth{depth}\"><td class=\"tree\"><a href=\"/g/{g}/c/{id}\">{name}</a></td><td>{kind}</td><td>{rs}</td><td>{status}</td><td>{enc}</td><td><code>{id}</code></td></tr>",
        g = E(g),
        id = E(c.id),
        name = E(display_name(c)),
        kind = kind(c),
        rs = E(c.replica_set_name.as_deref().unwrap_or("")),
        status = E(config.map_or("-", |c| c.status.as_str())),
        enc = encryption_badge(config),
    )
}

async fn group(
    State(s): State<AppState>,
    session: Session,
    Path(group_id): Path<String>,
) -> Result<Response> {
    let actor = &session.actor;
    let view = with(&session, s.service.groups().group(actor, &group_id).await)?;
    let (clusters, total) = with(
        &session,
        s.service.list_clusters(actor, &group_id, None, PAGE).await,
    )?;
    let (configs, _) = with(
        &session,
        s.service.list_backup_configs(actor, &group_id, PAGE).await,
    )?;
    let configs: HashMap<ObjectId, &BackupConfig> =
        configs.iter().map(|c| (c.cluster_id, c)).collect();
    let g = view.group.id;
    let mut body = format!(
        "<p class=\"crumbs\"><a href=\"/\">Groups</a> / {name}</p><h1>{name}</h1>\
         <p><a href=\"/g/{g}/events\" id=\"events-link\">Audit events</a></p><h2>Clusters</h2>",
        name = E(&view.group.name),
        g = E(g),
    );
    if clusters.is_empty() {
        body.push_str("<p class=\"empty\">No cluster registered.</p>");
    } else {
        body.push_str(
            "<table class=\"list\" id=\"clusters\"><thead><tr><th>Cluster</th><th>Type</th><th>Replica set</th><th>Backup</th><th>Encryption</th><th>Id</th></tr></thead><tbody>",
        );
        for top in clusters.iter().filter(|c| c.parent_cluster_id.is_none()) {
            body.push_str(&cluster_row(g, top, &configs, 0));
            let mut parts: Vec<&Cluster> = clusters
                .iter()
                .filter(|p| p.parent_cluster_id == Some(top.id))
                .collect();
            // Shards by name, then the config server replica set.
            parts.sort_by_key(|p| (p.shard_name.is_none(), display_name(p)));
            for p in parts {
                body.push_str(&cluster_row(g, p, &configs, 1));
            }
        }
        body.push_str("</tbody></table>");
        body.push_str(&super::more(clusters.len(), total, "clusters"));
    }
    if actor.can_admin_backup(g) {
        body.push_str(&format!(
            "<h2 class=\"section\">Register a cluster</h2><form method=\"post\" action=\"/g/{g}/clusters\" class=\"register\" id=\"register-form\">{csrf}\
             <label>Name <input name=\"cluster_name\" id=\"cluster-name\" required maxlength=\"64\"></label>\
             <label>Type <select name=\"type\" id=\"cluster-type\"><option value=\"REPLICA_SET\">replica set</option><option value=\"SHARDED_REPLICA_SET\">sharded cluster</option></select></label>\
             <label>Replica set name <span class=\"hint\">(replica set; default: the name)</span> <input name=\"replica_set_name\" id=\"replica-set-name\" maxlength=\"64\"></label>\
             <label>Shards <span class=\"hint\">(sharded: one per line, shard name and replica set name)</span> <textarea name=\"shards\" id=\"shards\" rows=\"3\" maxlength=\"2000\"></textarea></label>\
             <label>Config server replica set <span class=\"hint\">(sharded)</span> <input name=\"config_server\" id=\"config-server\" maxlength=\"64\"></label>\
             <button type=\"submit\" class=\"action\" id=\"register\">Register the cluster</button></form>",
            g = E(g),
            csrf = session.csrf_field(),
        ));
    }
    Ok(page(&view.group.name, Some(&session), &body))
}

async fn events(
    State(s): State<AppState>,
    session: Session,
    Path(group_id): Path<String>,
) -> Result<Response> {
    let actor = &session.actor;
    let view = with(&session, s.service.groups().group(actor, &group_id).await)?;
    let chain = with(
        &session,
        s.service.events().verify_chain(actor, &group_id).await,
    )?;
    let (events, total) = with(
        &session,
        s.service.events().list_events(actor, &group_id, PAGE).await,
    )?;
    // Events name clusters by id: show their names.
    let (clusters, _) = with(
        &session,
        s.service.list_clusters(actor, &group_id, None, PAGE).await,
    )?;
    let names: HashMap<ObjectId, String> =
        clusters.iter().map(|c| (c.id, display_name(c))).collect();
    let verdict = match chain {
        Ok(n) => format!(
            "<p class=\"verdict ok\" id=\"chain\">Hash chain verified: all {n} events of the audit trail, every group's, are intact and in order.</p>"
        ),
        Err(at) => format!(
            "<p class=\"verdict bad\" id=\"chain\">Hash chain BROKEN: {}. The audit trail was changed outside Headlock.</p>",
            E(at)
        ),
    };
    let mut body = format!(
        "<p class=\"crumbs\"><a href=\"/\">Groups</a> / <a href=\"/g/{g}\">{name}</a> / events</p><h1>Audit events</h1>{verdict}\
         <table class=\"list\" id=\"events\"><thead><tr><th>When</th><th>Event</th><th>Outcome</th><th>User</th><th>Cluster</th><th>Keys</th><th>Detail</th></tr></thead><tbody>",
        g = E(view.group.id),
        name = E(&view.group.name),
    );
    for e in &events {
        let keys = match (&e.old_key_uid, &e.new_key_uid) {
            (Some(o), Some(n)) => format!("<code>{}</code> → <code>{}</code>", E(o), E(n)),
            (Some(o), None) => format!("<code>{}</code>", E(o)),
            (None, Some(n)) => format!("<code>{}</code>", E(n)),
            (None, None) => String::new(),
        };
        let outcome_class = if e.outcome == "SUCCESS" { "ok" } else { "bad" };
        body.push_str(&format!(
            "<tr><td class=\"when\">{when}</td><td><code>{kind}</code></td><td><span class=\"badge {outcome_class}\">{outcome}</span></td><td>{user}</td><td>{cluster}</td><td class=\"keys\">{keys}</td><td class=\"detail\">{detail}</td></tr>",
            when = date(e.created),
            kind = E(&e.event_type),
            outcome = E(&e.outcome),
            user = E(e.username.as_deref().unwrap_or("")),
            cluster = E(e
                .cluster_id
                .map(|c| names.get(&c).cloned().unwrap_or_else(|| c.to_string()))
                .unwrap_or_default()),
            detail = E(e.detail.as_deref().unwrap_or("")),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&super::more(events.len(), total, "events"));
    Ok(page("Audit events", Some(&session), &body))
}
