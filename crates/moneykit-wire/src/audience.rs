//! The `aud` of an access token (RFC 9068 §2.2, RFC 7519 §4.1.3): one audience as a JSON
//! string, several as an array. Both forms are read; the shorter one is written, which is
//! what most validators expect for the common single-audience case.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The audiences a token is meant for, in the order they were granted.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Audience(Vec<String>);

impl Audience {
    /// The audiences in `values`, in order (an empty list is the empty audience).
    pub fn new(values: Vec<String>) -> Self {
        Self(values)
    }

    /// One audience.
    pub fn single(value: impl Into<String>) -> Self {
        Self(vec![value.into()])
    }

    /// The audiences, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether `audience` is one of them (exact comparison, RFC 7519 §4.1.3).
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The audiences as a slice.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Debug for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;

        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Audience, E> {
                Ok(Audience::single(value))
            }

            fn visit_string<E: de::Error>(self, value: String) -> Result<Audience, E> {
                Ok(Audience::single(value))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                // Bounded by the input's size; tokens are capped long before this matters.
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(Audience(values))
            }
        }

        deserializer.deserialize_any(AudienceVisitor)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Audience {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let uri = || ObjectBuilder::new().schema_type(Type::String);
        OneOfBuilder::new()
            .item(uri())
            .item(ArrayBuilder::new().items(uri()))
            .description(Some(
                "The audience: one URI as a string, several as an array (RFC 9068 §2.2).",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Audience {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audience_is_a_string_several_an_array() {
        let one = Audience::single("https://api.example.test/");
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#""https://api.example.test/""#
        );
        let two = Audience::new(vec!["a:1".into(), "b:2".into()]);
        assert_eq!(serde_json::to_string(&two).unwrap(), r#"["a:1","b:2"]"#);
        for json in [r#""a:1""#, r#"["a:1"]"#] {
            let parsed: Audience = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, Audience::single("a:1"));
        }
        let parsed: Audience = serde_json::from_str(r#"["a:1","b:2"]"#).unwrap();
        assert_eq!(parsed, two);
        assert!(parsed.contains("b:2") && !parsed.contains("b"));
        assert!(serde_json::from_str::<Audience>("3").is_err());
        assert!(serde_json::from_str::<Audience>("[3]").is_err());
    }
}
