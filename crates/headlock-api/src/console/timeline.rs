//! The master-key timeline: an SVG drawn on the server from the key history, one row per
//! key, oldest at the top. A bar runs from the key's creation to its retirement (or to
//! now for the current key), coloured by what became of it (current, retired,
//! compromised, destroyed); a dashed tail runs to a scheduled destruction; a cross marks
//! a destruction. The row's label says the key, its rotation type, who asked, and the
//! data keys and snapshots it protects now. A dashed line marks the next scheduled
//! rotation; a solid one marks now.

use headlock_core::keys::KeyState;
use headlock_core::model::{RetiredKeyFate, RotationType};
use headlock_service::clusters::KeyHistoryEntry;
use time::OffsetDateTime;

use super::{E, date};

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 330.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 52.0;
const ROW: f64 = 50.0;

/// What a key became, for its colour and its legend.
fn status(h: &KeyHistoryEntry, successor_compromise: bool) -> (&'static str, &'static str) {
    let destroyed = h
        .fate
        .as_ref()
        .is_some_and(|f| f.fate == RetiredKeyFate::Destroyed)
        || matches!(
            h.state,
            Some(KeyState::Destroyed | KeyState::DestroyedCompromised)
        );
    let compromised = successor_compromise
        || matches!(
            h.state,
            Some(KeyState::Compromised | KeyState::DestroyedCompromised)
        );
    match (h.key.retired.is_none(), compromised, destroyed) {
        (true, _, _) => ("current", "current"),
        (_, true, true) => ("compromised", "compromised, destroyed"),
        (_, true, false) => ("compromised", "compromised"),
        (_, false, true) => ("destroyed", "destroyed"),
        _ => ("retired", "retired"),
    }
}

/// The SVG of `history` (newest first, as the service gives it).
pub fn svg(
    history: &[KeyHistoryEntry],
    next_rotation: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> String {
    let oldest_first: Vec<&KeyHistoryEntry> = history.iter().rev().collect();
    let start = oldest_first
        .iter()
        .map(|h| h.key.created)
        .min()
        .unwrap_or(now);
    let mut end = now;
    for t in next_rotation
        .iter()
        .copied()
        .chain(history.iter().filter_map(|h| {
            h.scheduled_destruction
                .or(h.fate.as_ref().map(|f| f.changed))
        }))
    {
        end = end.max(t);
    }
    // The scale: every distinct moment (to the second) of the history gets an equal
    // share of the width, in order, with straight interpolation in between. Keys
    // rotated seconds apart and a rotation scheduled a month ahead then all stay
    // legible; the axis says the drawing is not to scale, and every moment is dated in
    // its row or its marker.
    let mut moments: Vec<i64> = history
        .iter()
        .flat_map(|h| {
            [
                Some(h.key.created),
                h.key.retired,
                h.scheduled_destruction,
                h.fate.as_ref().map(|f| f.changed),
            ]
        })
        .flatten()
        .chain([now])
        .chain(next_rotation)
        .map(|t| t.unix_timestamp())
        .collect();
    moments.sort_unstable();
    moments.dedup();
    let x0 = LABEL + 10.0;
    let x1 = WIDTH - RIGHT;
    let step = (x1 - x0 - 20.0) / (moments.len().max(2) - 1) as f64;
    let x = |t: OffsetDateTime| -> f64 {
        let t = t.unix_timestamp();
        let i = moments.partition_point(|&m| m <= t).saturating_sub(1);
        let base = x0 + 10.0 + step * i as f64;
        match moments.get(i + 1) {
            Some(&next) if next > moments[i] && t > moments[i] => {
                base + step * (t - moments[i]) as f64 / (next - moments[i]) as f64
            }
            _ => base,
        }
    };
    let height = TOP + ROW * oldest_first.len() as f64 + 36.0;
    let mut out = format!(
        "<svg class=\"timeline\" id=\"timeline\" role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>Master-key timeline: {n} keys</title>",
        n = oldest_first.len()
    );
    // The axis: its two ends, dated.
    let axis_y = TOP - 22.0;
    out.push_str(&format!(
        "<line class=\"axis\" x1=\"{x0}\" y1=\"{axis_y}\" x2=\"{x1}\" y2=\"{axis_y}\"/>\
         <text class=\"tick\" x=\"{x0}\" y=\"{ty}\">{first}</text>\
         <text class=\"tick\" x=\"{x1}\" y=\"{ty}\" text-anchor=\"end\">{last}</text>",
        ty = axis_y - 8.0,
        first = E(date(start)),
        last = E(date(end)),
    ));
    for &m in &moments {
        if let Ok(t) = OffsetDateTime::from_unix_timestamp(m) {
            let xm = x(t);
            out.push_str(&format!(
                "<line class=\"tickmark\" x1=\"{xm:.1}\" y1=\"{a}\" x2=\"{xm:.1}\" y2=\"{b}\"/>",
                a = axis_y - 4.0,
                b = axis_y + 4.0
            ));
        }
    }
    let bottom = TOP + ROW * oldest_first.len() as f64;
    // Now, and the next scheduled rotation.
    let xn = x(now);
    out.push_str(&format!(
        "<line class=\"now\" x1=\"{xn:.1}\" y1=\"{axis_y}\" x2=\"{xn:.1}\" y2=\"{bottom}\"/>\
         <text class=\"marker\" x=\"{xn:.1}\" y=\"{ly}\" text-anchor=\"middle\">now</text>",
        ly = bottom + 16.0
    ));
    if let Some(next) = next_rotation {
        let xr = x(next);
        out.push_str(&format!(
            "<line class=\"next\" x1=\"{xr:.1}\" y1=\"{axis_y}\" x2=\"{xr:.1}\" y2=\"{bottom}\"/>\
             <text class=\"marker next-label\" x=\"{xr:.1}\" y=\"{ly}\" text-anchor=\"end\">next rotation {when}</text>",
            ly = bottom + 32.0,
            when = E(date(next))
        ));
    }
    for (i, h) in oldest_first.iter().enumerate() {
        let k = &h.key;
        let successor_compromise = oldest_first
            .get(i + 1)
            .is_some_and(|n| n.key.rotation_type == RotationType::Compromise);
        let (class, what) = status(h, successor_compromise);
        let y = TOP + ROW * i as f64;
        let bar_y = y + 6.0;
        let (a, b) = (
            x(k.created),
            x(k.retired.unwrap_or(now)).max(x(k.created) + 14.0),
        );
        // The label: key id (shortened), then why and who, then what it protects.
        let uid: String = k.kmip_uid.as_str().chars().take(38).collect();
        out.push_str(&format!(
            "<g class=\"key {class}\"><title>{full}: {what}</title>\
             <text class=\"uid\" x=\"8\" y=\"{ty1}\">{uid}</text>\
             <text class=\"sub\" x=\"8\" y=\"{ty2}\">{rt} by {by} · {dk} data keys · {sn} snapshots</text>\
             <rect class=\"bar {class}\" x=\"{a:.1}\" y=\"{bar_y}\" width=\"{w:.1}\" height=\"16\" rx=\"3\"/>\
             <circle class=\"created\" cx=\"{a:.1}\" cy=\"{cy}\" r=\"4\"/>",
            full = E(&k.kmip_uid),
            ty1 = y + 14.0,
            ty2 = y + 32.0,
            uid = E(uid),
            rt = E(k.rotation_type.as_str()),
            by = E(&k.requested_by),
            dk = h.data_keys,
            sn = h.snapshots,
            w = b - a,
            cy = bar_y + 8.0,
        ));
        // What became of it, and when, under the bar.
        let until = match k.retired {
            Some(r) => date(r),
            None => "now".into(),
        };
        let (label_x, anchor) = if a + 360.0 > x1 {
            (x1, "end")
        } else {
            (a, "start")
        };
        out.push_str(&format!(
            "<line class=\"row-line\" x1=\"8\" y1=\"{ly}\" x2=\"{x1}\" y2=\"{ly}\"/>\
             <text class=\"state\" x=\"{label_x:.1}\" y=\"{ty}\" text-anchor=\"{anchor}\"><tspan class=\"what\">{what}</tspan> · {from} → {until}</text>",
            ly = y + ROW - 4.0,
            ty = bar_y + 30.0,
            from = E(date(k.created)),
            until = E(until),
        ));
        if let Some(at) = h.scheduled_destruction {
            let xd = x(at);
            out.push_str(&format!(
                "<line class=\"scheduled\" x1=\"{b:.1}\" y1=\"{cy}\" x2=\"{xd:.1}\" y2=\"{cy}\"/>\
                 <rect class=\"scheduled-end\" x=\"{r:.1}\" y=\"{ry}\" width=\"8\" height=\"8\"><title>destruction scheduled {when}</title></rect>",
                cy = bar_y + 8.0,
                r = xd - 4.0,
                ry = bar_y + 4.0,
                when = E(date(at))
            ));
        }
        if let Some(f) = h
            .fate
            .as_ref()
            .filter(|f| f.fate == RetiredKeyFate::Destroyed)
        {
            let xd = x(f.changed);
            let cy = bar_y + 8.0;
            out.push_str(&format!(
                "<path class=\"destroyed-mark\" d=\"M{l:.1} {t:.1} L{r:.1} {b2:.1} M{l:.1} {b2:.1} L{r:.1} {t:.1}\"><title>destroyed {when}</title></path>",
                l = xd - 6.0,
                r = xd + 6.0,
                t = cy - 6.0,
                b2 = cy + 6.0,
                when = E(date(f.changed))
            ));
        }
        if let Some(e) = h.state_error.as_ref() {
            out.push_str(&format!(
                "<text class=\"state-error\" x=\"{x0}\" y=\"{ty}\">KMIP: {}</text>",
                E(e.chars().take(90).collect::<String>()),
                ty = y + 46.0,
            ));
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    // The legend, as HTML under the drawing.
    out.push_str(
        "<p class=\"legend\"><span class=\"swatch current\"></span>current \
         <span class=\"swatch retired\"></span>retired \
         <span class=\"swatch compromised\"></span>compromised \
         <span class=\"swatch destroyed\"></span>destroyed \
         <span class=\"swatch scheduled\"></span>destruction scheduled \
         <span class=\"swatch next\"></span>next scheduled rotation \
         · moments are spaced evenly, in order, not to scale</p>",
    );
    out
}

#[cfg(test)]
mod tests {
    use headlock_core::ObjectId;
    use headlock_core::keys::{KeyState, KmipUid};
    use headlock_core::model::{MasterKeyRecord, RotationType};
    use headlock_service::clusters::KeyHistoryEntry;
    use time::{Duration, OffsetDateTime};

    fn entry(
        uid: &str,
        created: OffsetDateTime,
        retired: Option<OffsetDateTime>,
        rotation_type: RotationType,
        state: KeyState,
    ) -> KeyHistoryEntry {
        KeyHistoryEntry {
            key: MasterKeyRecord {
                cluster_id: ObjectId::new(),
                kmip_uid: KmipUid::new(uid),
                kmip_server: "kmip:5696".into(),
                kmip_name: "n".into(),
                created,
                retired,
                rotation_type,
                requested_by: "<ops>".into(),
            },
            state: Some(state),
            state_error: None,
            data_keys: 2,
            snapshots: 5,
            fate: None,
            scheduled_destruction: None,
        }
    }

    /// A key followed by a compromise rotation is drawn as compromised, the current key
    /// as current, the next rotation is marked, and names are escaped.
    #[test]
    fn draws_each_key_with_its_fate_and_the_next_rotation() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let t0 = now - Duration::days(40);
        let t1 = now - Duration::seconds(5);
        let history = vec![
            entry(
                "k-new",
                t1,
                None,
                RotationType::Compromise,
                KeyState::Active,
            ),
            entry(
                "k-old",
                t0,
                Some(t1),
                RotationType::Initial,
                KeyState::Deactivated,
            ),
        ];
        let svg = super::svg(&history, Some(now + Duration::days(30)), now);
        assert_eq!(svg.matches("<g class=\"key ").count(), 2);
        let old = svg.find("k-old").unwrap();
        let new = svg.find("k-new").unwrap();
        assert!(old < new, "oldest key first");
        assert!(svg.contains("<g class=\"key compromised\"><title>k-old: compromised"));
        assert!(svg.contains("<g class=\"key current\"><title>k-new: current"));
        assert!(svg.contains("next rotation 2027-"));
        assert!(svg.contains("by &lt;ops&gt;"));
        assert!(!svg.contains("<ops>"));
        assert!(svg.contains("2 data keys · 5 snapshots"));
    }
}
