//! Free text cut to a size, for the small files that record where a change came from
//! rather than the change itself: the lock file and the audit trail.
//!
//! A command line or an error message carries whatever the user passed, a captured
//! build log included (`--stdout "$(cargo build 2>&1)"`, up to the 128 KiB Linux allows
//! per argument). The state document keeps such data whole; the lock file is read
//! with a 64 KiB limit and an audit line should stay one short line, so what they
//! record of it is bounded here, and says how much was left out.

/// `text` cut, on a character boundary, to what takes at most `limit` bytes once
/// written as a JSON string (a control character takes up to six), ending with
/// ` … [N more bytes]` when anything was cut. Text that fits is returned unchanged.
///
/// ```
/// use checklist_core::bounded_text::bound_json_text;
///
/// assert_eq!(bound_json_text("cargo build".into(), 64), "cargo build");
/// let cut = bound_json_text("x".repeat(1000), 64);
/// assert!(cut.len() <= 64 && cut.ends_with(" more bytes]"), "{cut}");
/// ```
pub fn bound_json_text(text: String, limit: usize) -> String {
    fn json_len(c: char) -> usize {
        match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        }
    }
    if text.chars().map(json_len).sum::<usize>() <= limit {
        return text;
    }
    // Room for the marker (" … [N more bytes]", under 40 bytes) inside the limit.
    let budget = limit.saturating_sub(40);
    let mut used = 0;
    let cut = text
        .char_indices()
        .find(|&(_, c)| {
            used += json_len(c);
            used > budget
        })
        .map_or(text.len(), |(at, _)| at);
    format!("{} … [{} more bytes]", &text[..cut], text.len() - cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_fits_the_limit_as_json_whatever_the_characters() {
        for unit in ["x", "✓", "\u{1b}", "\"", "\n", "日本"] {
            let text = unit.repeat(10_000);
            for limit in [40, 64, 100, 4096] {
                let cut = bound_json_text(text.clone(), limit);
                let json = serde_json::to_string(&cut).unwrap();
                // The two quotes around a JSON string are not part of the text.
                assert!(
                    json.len() - 2 <= limit,
                    "{unit:?} at {limit}: {} bytes",
                    json.len() - 2
                );
                assert!(cut.ends_with(" more bytes]"), "{cut}");
            }
        }
    }
}
