//! How the API commands print an answer: `--output json` (the default) is the API's
//! JSON pretty-printed; `--output table` is for people: a list (`results`) as one row per
//! item under the columns its command names, a single entity as one `field  value` line
//! per field (nested fields as `parts[0].clusterId`; `links` left out). Every value from
//! the server goes through [`printable`], so a name cannot move the terminal's cursor.

use serde_json::Value;

use super::remote::{print_json, print_line, printable};
use crate::cli::OutputFormat;

/// One column of a list table: its heading and the JSON pointer of its value in an item.
pub(crate) type Column = (&'static str, &'static str);

/// Groups.
pub(crate) const GROUPS: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("CLUSTERS", "/clusterCount"),
    ("CREATED", "/created"),
];
/// Clusters.
pub(crate) const CLUSTERS: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/clusterName"),
    ("TYPE", "/typeName"),
    ("REPLICA SET", "/replicaSetName"),
    ("SHARD", "/shardName"),
    ("PARENT", "/parentClusterId"),
];
/// Backup configurations.
pub(crate) const BACKUP_CONFIGS: &[Column] = &[
    ("CLUSTER", "/clusterId"),
    ("STATUS", "/statusName"),
    ("ENCRYPTION", "/encryptionEnabled"),
    ("KEY STATUS", "/encryptionKeyStatus"),
    ("ROTATE EVERY (DAYS)", "/encryptionKeyRotationPeriodDays"),
    ("NEXT ROTATION", "/nextEncryptionKeyRotation"),
    (
        "DESTROY RETIRED AFTER (DAYS)",
        "/retiredKeyDestroyAfterDays",
    ),
];
/// A cluster's master keys (`encryption-key history`).
pub(crate) const KEYS: &[Column] = &[
    ("KEY", "/encryptionKeyUUID"),
    ("STATE", "/state"),
    ("ROTATION", "/rotationType"),
    ("BY", "/requestedBy"),
    ("CREATED", "/created"),
    ("RETIRED", "/retired"),
    ("DATA KEYS", "/dataKeyCount"),
    ("SNAPSHOTS", "/snapshotCount"),
    ("DESTRUCTION", "/scheduledDestruction"),
];
/// Re-encryption jobs.
pub(crate) const REENCRYPTION_JOBS: &[Column] = &[
    ("ID", "/id"),
    ("CLUSTER", "/clusterId"),
    ("STATUS", "/statusName"),
    ("SNAPSHOTS DONE", "/snapshotsDone"),
    ("OF", "/snapshotsTotal"),
    ("BYTES LEFT", "/bytesRemaining"),
    ("CREATED", "/created"),
    ("FINISHED", "/finished"),
];
/// Snapshots (each of one cluster: its one part's sizes and key).
pub(crate) const SNAPSHOTS: &[Column] = &[
    ("ID", "/id"),
    ("CREATED", "/created/date"),
    ("KIND", "/kind"),
    ("DATA BYTES", "/parts/0/dataSizeBytes"),
    ("STORED BYTES", "/parts/0/storageSizeBytes"),
    ("MASTER KEY", "/parts/0/masterKeyUUID"),
    ("EXPIRES", "/expires"),
    ("DO NOT DELETE", "/doNotDelete"),
];
/// Restore jobs (the link shows with `get`, or in JSON).
pub(crate) const RESTORE_JOBS: &[Column] = &[
    ("ID", "/id"),
    ("SNAPSHOT", "/snapshotId"),
    ("CREATED", "/created"),
    ("STATUS", "/statusName"),
    ("DELIVERY", "/delivery/statusName"),
    ("LINK EXPIRES", "/delivery/expires"),
];
/// Audit events.
pub(crate) const EVENTS: &[Column] = &[
    ("ID", "/id"),
    ("CREATED", "/created"),
    ("TYPE", "/eventTypeName"),
    ("OUTCOME", "/outcome"),
    ("CLUSTER", "/clusterId"),
    ("USER", "/username"),
    ("OLD KEY", "/oldEncryptionKeyUUID"),
    ("NEW KEY", "/newEncryptionKeyUUID"),
];

/// Prints `v` as asked: a list as a table under `columns`, anything else field by field.
pub(crate) fn show(v: &Value, format: OutputFormat, columns: &[Column]) {
    match format {
        OutputFormat::Json => print_json(v),
        OutputFormat::Table => print_line(render(v, columns).trim_end()),
    }
}

/// The table text of `v`.
pub(crate) fn render(v: &Value, columns: &[Column]) -> String {
    match v.get("results").and_then(Value::as_array) {
        Some(items) => {
            let mut text = list(items, columns);
            let total = v.get("totalCount").and_then(Value::as_u64);
            if let Some(total) = total.filter(|&t| t > items.len() as u64) {
                text.push_str(&format!(
                    "({} of {total} shown: --page-num N, --items-per-page N)\n",
                    items.len()
                ));
            }
            text
        }
        None => fields(v),
    }
}

/// A value as a table cell: text as it is, `-` for null or absent.
fn cell(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) if s.is_empty() => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            if a.is_empty() {
                "-".to_string()
            } else {
                a.iter()
                    .map(|x| cell(Some(x)))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        }
        Some(other) => other.to_string(),
    };
    printable(&text)
}

/// Rows under headings, columns padded to their widest cell.
fn list(items: &[Value], columns: &[Column]) -> String {
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|(h, _)| h.to_string()).collect()];
    for item in items {
        rows.push(columns.iter().map(|(_, p)| cell(item.pointer(p))).collect());
    }
    let mut text = grid(&rows);
    if items.is_empty() {
        text.push_str("(none)\n");
    }
    text
}

/// One `name  value` line per scalar field, nested fields by their path.
fn fields(v: &Value) -> String {
    let mut rows = Vec::new();
    flatten("", v, &mut rows);
    grid(&rows)
}

fn flatten(prefix: &str, v: &Value, rows: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if k == "links" {
                    continue;
                }
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, x, rows);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, rows);
            }
        }
        scalar => rows.push(vec![printable(prefix), cell(Some(scalar))]),
    }
}

/// Left-aligned columns two spaces apart, no trailing spaces.
fn grid(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                let pad = widths[i] - c.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_lists_as_aligned_rows_with_a_paging_hint() {
        let v = json!({"results": [
            {"id": "a1", "name": "prod", "clusterCount": 2, "created": null},
            {"id": "b22", "name": "dev\u{1b}[2J", "clusterCount": 0},
        ], "totalCount": 3});
        assert_eq!(
            render(&v, GROUPS),
            "ID   NAME     CLUSTERS  CREATED\n\
             a1   prod     2         -\n\
             b22  dev [2J  0         -\n\
             (2 of 3 shown: --page-num N, --items-per-page N)\n"
        );
        assert_eq!(
            render(&json!({"results": [], "totalCount": 0}), GROUPS),
            "ID  NAME  CLUSTERS  CREATED\n(none)\n"
        );
    }

    #[test]
    fn renders_an_entity_field_by_field_without_links() {
        let v = json!({"clusterId": "c", "parts": [{"clusterId": "p", "encryptionKeyUUID": "k"}],
            "ns": ["a", "b"], "links": [{"rel": "self"}]});
        let line = |k: &str, v: &str| format!("{k:<28}{v}\n");
        assert_eq!(
            render(&v, &[]),
            [
                line("clusterId", "c"),
                line("ns", "a,b"),
                line("parts[0].clusterId", "p"),
                line("parts[0].encryptionKeyUUID", "k"),
            ]
            .concat()
        );
    }
}
