//! The characters no name may hold (group, cluster, replica set and shard names,
//! usernames): control characters, which break logs and terminals, and the Unicode
//! controls that reorder or break text as it is shown (bidi embeddings, overrides and
//! isolates, the implicit direction marks, line and paragraph separators), with which
//! a name can show as something it is not ("Trojan Source", CVE-2021-42574).

/// True for a character that no name may hold.
pub(crate) fn is_refused_in_name(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' // ARABIC LETTER MARK
                | '\u{200E}' | '\u{200F}' // LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
                | '\u{202A}'..='\u{202E}' // embeddings, POP DIRECTIONAL FORMATTING, overrides
                | '\u{2066}'..='\u{2069}' // isolates, POP DIRECTIONAL ISOLATE
                | '\u{2028}' | '\u{2029}' // LINE / PARAGRAPH SEPARATOR
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_controls_and_bidi_characters() {
        for c in [
            '\0', '\n', '\u{7f}', '\u{85}', '\u{202E}', '\u{2066}', '\u{200F}', '\u{61C}',
        ] {
            assert!(is_refused_in_name(c), "{:?}", c);
        }
    }

    #[test]
    fn accepts_letters_of_any_script_and_punctuation() {
        for c in ['a', 'Z', 'ü', 'ש', 'ع', '中', '–', ' ', '.', '-', '_'] {
            assert!(!is_refused_in_name(c), "{c:?}");
        }
    }
}
