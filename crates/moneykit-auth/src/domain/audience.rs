//! Audiences: which resource servers a token is for (RFC 9068 §2.2 `aud`), and how a
//! client picks them with RFC 8707 resource indicators (`resource`) or the `audience`
//! parameter Auth0 and Ory Hydra clients send.
//!
//! A client lists the audiences it may ask for (the first is its default); a client with
//! none may ask only for the server's default audience. Values are compared exactly, as
//! RFC 7519 §4.1.3 says, so `https://api.example/` and `https://api.example` differ.

use moneykit_wire::Audience;

/// Longest audience URI accepted.
pub const MAX_AUDIENCE_LEN: usize = 512;

/// Most audiences one client may list, and one token may carry.
pub const MAX_AUDIENCES: usize = 16;

/// An audience that is not an absolute URI without a fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid audience {0:?}: expected an absolute URI (e.g. https://api.example.com/) without a fragment, spaces or control characters, at most {MAX_AUDIENCE_LEN} characters"
)]
pub struct InvalidAudience(pub String);

/// Checks one audience URI (RFC 8707 §2: absolute, no fragment). Only visible ASCII is
/// allowed, so lists can be space-separated and nothing needs escaping.
pub fn check_audience(text: &str) -> Result<(), InvalidAudience> {
    let invalid = || InvalidAudience(text.chars().take(MAX_AUDIENCE_LEN).collect());
    if text.len() > MAX_AUDIENCE_LEN || text.contains('#') {
        return Err(invalid());
    }
    if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(invalid());
    }
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":" and something.
    let (scheme, rest) = text.split_once(':').ok_or_else(invalid)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || rest.is_empty() {
        return Err(invalid());
    }
    Ok(())
}

/// Parses a client's audience list: each checked, repeats dropped, order kept.
pub fn parse_audiences<S: AsRef<str>>(values: &[S]) -> Result<Vec<String>, InvalidAudience> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let value = value.as_ref();
        check_audience(value)?;
        if !out.iter().any(|a| a == value) {
            out.push(value.to_owned());
        }
    }
    if out.len() > MAX_AUDIENCES {
        return Err(InvalidAudience(format!(
            "{} audiences (at most {MAX_AUDIENCES})",
            out.len()
        )));
    }
    Ok(out)
}

/// A requested audience the client may not ask for, or a malformed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetNotAllowed(pub String);

/// The audience a token gets: `requested` (every value in `allowed`, repeats dropped) or,
/// when nothing is requested, the first allowed one.
///
/// `allowed` is the client's list, or the server's default alone for a client without
/// one; it is never empty.
pub fn resolve_audience<'r>(
    allowed: &[String],
    requested: impl IntoIterator<Item = &'r str>,
) -> Result<Audience, TargetNotAllowed> {
    let mut granted: Vec<String> = Vec::new();
    for value in requested {
        if !allowed.iter().any(|a| a == value) {
            let shown: String = value.chars().take(MAX_AUDIENCE_LEN).collect();
            return Err(TargetNotAllowed(format!(
                "resource {shown:?} is not an audience of this client"
            )));
        }
        if !granted.iter().any(|g| g == value) {
            granted.push(value.to_owned());
        }
    }
    if granted.is_empty() {
        granted.extend(allowed.first().cloned());
    }
    Ok(Audience::new(granted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_absolute_uris_without_fragments() {
        for ok in [
            "https://api.example.test/",
            "urn:example:ledger",
            "http://127.0.0.1:8080",
            "a+b.c-d:x",
        ] {
            assert_eq!(check_audience(ok), Ok(()), "{ok}");
        }
        let too_long = format!("https://{}", "a".repeat(MAX_AUDIENCE_LEN));
        for bad in [
            "",
            "api.example.test",
            "/relative",
            "https://api.example.test/#frag",
            "https://a b",
            "https://ä",
            "1http://x",
            "https:",
            ":x",
            "https://x\n",
            too_long.as_str(),
        ] {
            assert!(check_audience(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_drop_repeats_and_are_bounded() {
        assert_eq!(
            parse_audiences(&["urn:a", "urn:b", "urn:a"]).unwrap(),
            ["urn:a", "urn:b"]
        );
        let many: Vec<String> = (0..=MAX_AUDIENCES).map(|i| format!("urn:{i}")).collect();
        assert!(parse_audiences(&many).is_err());
        assert!(parse_audiences(&["urn:a", "nope"]).is_err());
    }

    #[test]
    fn nothing_requested_is_the_default_and_requests_must_be_allowed() {
        let allowed = vec!["urn:a".to_owned(), "urn:b".to_owned()];
        assert_eq!(
            resolve_audience(&allowed, []).unwrap(),
            Audience::single("urn:a")
        );
        assert_eq!(
            resolve_audience(&allowed, ["urn:b", "urn:a", "urn:b"]).unwrap(),
            Audience::new(vec!["urn:b".into(), "urn:a".into()])
        );
        assert!(resolve_audience(&allowed, ["urn:a", "urn:c"]).is_err());
        assert!(resolve_audience(&allowed, ["urn:A"]).is_err());
    }
}
