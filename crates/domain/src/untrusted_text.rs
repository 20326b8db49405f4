//! Text from outside (a registry's error body, a token realm's answer, a header) made safe to
//! show, store, log or print on a terminal: terminal escape sequences and control characters
//! removed, and the length bounded.

/// Characters kept of an outside answer in a message.
pub const EXCERPT_CHARS: usize = 200;

/// `text` without control characters (C0 but newline and tab, DEL, C1), terminal escape
/// sequences (CSI `ESC [ … final`, OSC/DCS/APC/PM/SOS strings up to BEL or `ESC \`, and two-byte
/// `ESC x`), and Unicode bidirectional overrides (which reorder what a reader sees); cut to
/// `max_chars` characters with `…` when longer. Runs of whitespace left behind are folded.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = text.chars().peekable();
    let mut kept = 0usize;
    let mut truncated = false;
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // CSI and OSC/DCS/… as single C1 characters introduce the same sequences.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{9d}' | '\u{9e}' | '\u{9f}' | '\u{98}' => skip_string(&mut chars),
            '\n' | '\t' => push(&mut out, ' ', &mut kept, max_chars, &mut truncated),
            c if c.is_control() || is_bidi_control(c) => {}
            c => push(&mut out, c, &mut kept, max_chars, &mut truncated),
        }
        if truncated {
            break;
        }
    }
    let mut folded = String::with_capacity(out.len() + 3);
    let mut last_space = false;
    for c in out.trim().chars() {
        if c == ' ' {
            if !last_space {
                folded.push(c);
            }
            last_space = true;
        } else {
            folded.push(c);
            last_space = false;
        }
    }
    if truncated {
        folded.push('…');
    }
    folded
}

/// `text` made safe for a terminal (as [`sanitize`], without a length bound): what the CLI does
/// to every string that came from the server before it prints it.
pub fn for_terminal(text: &str) -> String {
    sanitize(text, usize::MAX)
}

fn push(out: &mut String, c: char, kept: &mut usize, max: usize, truncated: &mut bool) {
    if *kept >= max {
        *truncated = true;
        return;
    }
    out.push(c);
    *kept += 1;
}

/// Invisible formatting characters that reorder, hide or break what a reader sees: bidirectional
/// controls, zero-width characters, line and paragraph separators, the byte-order mark, tag
/// characters, soft hyphen.
/// Whether `c` is an invisible formatting character that changes how text around it reads
/// (bidirectional overrides and isolates, zero-width characters, the soft hyphen).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// JSON text (as serialised) with every character a terminal could act on, which JSON leaves
/// as it is, written as a `\uXXXX` escape instead: C1 controls, DEL and the invisible formatting
/// characters. The value is the same JSON; only its spelling changes. (They can only stand inside
/// strings, where the escape means the same character.)
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) || is_bidi_control(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", unit));
            }
        } else {
            out.push(c);
        }
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// After ESC: a CSI, a string command, or one more character.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(chars),
        // Two-byte sequences (ESC c, ESC 7, ESC ( B…): the intermediate bytes and the final one.
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            while chars
                .next_if(|c| ('\u{20}'..='\u{2f}').contains(c))
                .is_some()
            {}
            chars.next();
        }
        _ => {}
    }
}

/// Parameter and intermediate bytes, then one final byte (`@` to `~`).
fn skip_csi(chars: &mut Chars<'_>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) || !('\u{20}'..='\u{3f}').contains(&c) {
            break;
        }
    }
}

/// Up to BEL, ST (`ESC \` or U+009C), or the end.
fn skip_string(chars: &mut Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                break;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_controls() {
        let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[1;1Hregistry added\r\nforged line\u{9b}31m red\u{85}x\u{1b}P1$r\u{1b}\\ok\u{1b}c\u{1b}(Bz\u{202e}gnp.exe\u{7f}";
        let clean = sanitize(evil, 500);
        assert_eq!(clean, "registry added forged line redxokzgnp.exe");
        assert!(!clean.chars().any(|c| c.is_control()));
    }

    #[test]
    fn cuts_and_folds() {
        assert_eq!(sanitize("  a \n\n b\t", 10), "a b");
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("", 3), "");
        assert_eq!(
            sanitize("plain text: HTTP 401", 200),
            "plain text: HTTP 401"
        );
        // an unterminated sequence swallows only itself
        assert_eq!(sanitize("ok\u{1b}]0;title", 50), "ok");
        assert_eq!(sanitize("ünïcødé ✓", 50), "ünïcødé ✓");
        assert_eq!(for_terminal("a\u{1b}[2Jb"), "ab");
        assert_eq!(
            sanitize("a\u{2028}b\u{200b}c\u{feff}d\u{e0041}e", 50),
            "abcde"
        );
        let json = serde_json::json!({"m": "x\u{9b}31m\u{202e}y\u{1b}"}).to_string();
        let safe = json_for_terminal(&json);
        assert!(!safe.chars().any(|c| c.is_control()), "{safe}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            "the same JSON"
        );
    }
}
