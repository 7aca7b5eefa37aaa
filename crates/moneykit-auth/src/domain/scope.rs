//! Scopes: what a client may do, and what a token is narrowed to (RFC 6749 §3.3).

use std::fmt;

/// An ordered set of scope tokens, held as their normalized wire form (single spaces,
/// no repeats): one allocation per client however many scopes it has, and `Display` is
/// free.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(String);

/// A scope list that is not valid RFC 6749 §3.3 syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: scope tokens use printable ASCII except space, '\"' and '\\'")]
pub struct InvalidScopeSyntax(pub String);

/// A requested scope the client is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {0:?} is not allowed for this client")]
pub struct ScopeNotAllowed(pub String);

impl Scopes {
    /// Parses a space-separated list, dropping repeats. Empty input is the empty list.
    pub fn parse(text: &str) -> Result<Self, InvalidScopeSyntax> {
        let mut out = Self(String::with_capacity(text.len()));
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            // scope-token = 1*NQCHAR; NQCHAR = %x21 / %x23-5B / %x5D-7E
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(InvalidScopeSyntax(token.to_owned()));
            }
            if !out.contains(token) {
                if !out.0.is_empty() {
                    out.0.push(' ');
                }
                out.0.push_str(token);
            }
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
