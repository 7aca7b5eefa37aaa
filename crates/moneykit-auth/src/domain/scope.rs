//! Scopes: what a client may do, and what a token is narrowed to (RFC 6749 §3.3).

use std::collections::HashSet;
use std::fmt;

/// Most scope tokens one list may hold: a request (or a client) naming more is refused,
/// so a large `scope` parameter costs bounded work.
pub const MAX_SCOPE_TOKENS: usize = 256;

/// Up to this many tokens, repeats are found by scanning what is kept (no allocation);
/// longer lists use a set, so parsing stays linear.
const SCAN_LIMIT: usize = 16;

/// An ordered set of scope tokens, held as their normalized wire form (single spaces,
/// no repeats): one allocation per client however many scopes it has, and `Display` is
/// free.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(String);

/// A scope list that is not valid RFC 6749 §3.3 syntax, or too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidScopeSyntax {
    /// A token with a character outside NQCHAR.
    #[error("invalid scope {0:?}: scope tokens use printable ASCII except space, '\"' and '\\'")]
    Character(String),
    /// More distinct tokens than [`MAX_SCOPE_TOKENS`].
    #[error("more than {MAX_SCOPE_TOKENS} scope tokens")]
    TooMany,
}

/// A requested scope the client is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {0:?} is not allowed for this client")]
pub struct ScopeNotAllowed(pub String);

impl Scopes {
    /// Parses a space-separated list, dropping repeats. Empty input is the empty list.
    pub fn parse(text: &str) -> Result<Self, InvalidScopeSyntax> {
        let mut out = Self(String::with_capacity(text.len()));
        let mut count = 0;
        let tokens = || text.split(' ').filter(|t| !t.is_empty());
        // Only long lists pay for the set.
        let mut seen: Option<HashSet<&str>> = tokens().nth(SCAN_LIMIT).map(|_| HashSet::new());
        for token in tokens() {
            // scope-token = 1*NQCHAR; NQCHAR = %x21 / %x23-5B / %x5D-7E
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(InvalidScopeSyntax::Character(token.to_owned()));
            }
            let repeat = match &mut seen {
                Some(seen) => !seen.insert(token),
                None => out.contains(token),
            };
            if repeat {
                continue;
            }
            count += 1;
            if count > MAX_SCOPE_TOKENS {
                return Err(InvalidScopeSyntax::TooMany);
            }
            if !out.0.is_empty() {
                out.0.push(' ');
            }
            out.0.push_str(token);
        }
        Ok(out)
    }

    /// The space-separated wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates the scope tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// The scopes a token gets when the client (allowed `self`) asks for `requested`:
    /// everything allowed when nothing is requested, otherwise exactly what is requested,
    /// provided each requested scope is allowed.
    pub fn narrow_to(&self, requested: &Scopes) -> Result<Scopes, ScopeNotAllowed> {
        if requested.is_empty() {
            return Ok(self.clone());
        }
        match requested.iter().find(|s| !self.contains(s)) {
            Some(denied) => Err(ScopeNotAllowed(denied.to_owned())),
            None => Ok(requested.clone()),
        }
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Scopes {
        Scopes::parse(t).unwrap()
    }

    #[test]
    fn parse_splits_on_spaces_and_drops_repeats() {
        assert_eq!(s("  a b  a c ").to_string(), "a b c");
        assert!(s("").is_empty());
        assert!(s("   ").is_empty());
    }

    #[test]
    fn parse_rejects_characters_outside_nqchar() {
        assert!(Scopes::parse("a\"b").is_err());
        assert!(Scopes::parse("a\\b").is_err());
        assert!(Scopes::parse("a\tb").is_err());
        assert!(Scopes::parse("é").is_err());
        assert!(Scopes::parse("accounts:read transactions.read!").is_ok());
    }

    #[test]
    fn many_tokens_are_deduplicated_and_capped() {
        let distinct: Vec<String> = (0..MAX_SCOPE_TOKENS).map(|i| format!("s{i}")).collect();
        let with_repeats = format!("{} {} s0", distinct.join(" "), distinct.join(" "));
        assert_eq!(s(&with_repeats).to_string(), distinct.join(" "));
        let one_more = format!("{} extra", distinct.join(" "));
        assert_eq!(Scopes::parse(&one_more), Err(InvalidScopeSyntax::TooMany));
        // Repeats do not count towards the cap.
        assert_eq!(s(&"a ".repeat(10_000)).to_string(), "a");
    }

    #[test]
    fn empty_request_gets_everything_allowed() {
        assert_eq!(s("a b").narrow_to(&s("")).unwrap(), s("a b"));
    }

    #[test]
    fn request_narrows_and_must_be_a_subset() {
        assert_eq!(s("a b c").narrow_to(&s("c a")).unwrap().to_string(), "c a");
        assert_eq!(
            s("a b").narrow_to(&s("a z")).unwrap_err(),
            ScopeNotAllowed("z".into())
        );
        assert!(s("").narrow_to(&s("a")).is_err());
    }
}
