//! Writing JSON string literals by hand, for the two bodies on the token endpoint's hot
//! path (the access token's claims and the token response), where serde's generic
//! machinery cost several microseconds per request. The output is byte-for-byte what
//! `serde_json` writes; the tests hold it to that.

/// Appends `s` to `out` as a JSON string literal, quotes included, escaping exactly as
/// `serde_json` does (`"`, `\`, and control characters; nothing else).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    // Tokens, ids and scopes never need escaping: check in one vectorizable pass first.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_serde_json_byte_for_byte() {
        let cases = [
            "",
            "plain",
            "accounts:read transactions:read",
            "quote\" backslash\\ slash/",
            "tab\t nl\n cr\r bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f}",
            "ünïcödé ✓ 🦀",
            "http://127.0.0.1:8080/path?x=\"y\"",
        ];
        for case in cases {
            let mut ours = String::new();
            push_str(&mut ours, case);
            assert_eq!(ours, serde_json::to_string(case).unwrap(), "{case:?}");
        }
        for b in 0u8..=0x7f {
            let s = (b as char).to_string();
            let mut ours = String::new();
            push_str(&mut ours, &s);
            assert_eq!(ours, serde_json::to_string(&s).unwrap(), "byte {b:#x}");
        }
    }
}
