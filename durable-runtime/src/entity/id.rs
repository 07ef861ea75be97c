//! Entity ids: `@name@key`, as in Durable Functions.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Names an entity: the registered entity `name` and a `key` telling its instances apart.
/// Written `@name@key` (the form stored, listed and sent over HTTP); the name may not contain
/// `@`, the key may contain anything.
///
/// ```
/// use durable_runtime::EntityId;
/// let id = EntityId::new("counter", "orders@eu");
/// assert_eq!(id.to_string(), "@counter@orders@eu");
/// assert_eq!("@counter@orders@eu".parse::<EntityId>().unwrap(), id);
/// assert!("counter".parse::<EntityId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    name: String,
    key: String,
}

/// Why a text or a name is not an entity id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntityIdError {
    /// The text does not have the `@name@key` shape.
    #[error("'{0}' is not an entity id: expected `@name@key`")]
    Malformed(String),
    /// The name is empty.
    #[error("entity id '{0}' has an empty name")]
    EmptyName(String),
    /// The name contains `@`, which would make the id ambiguous.
    #[error("entity name '{0}' contains '@'")]
    AtInName(String),
    /// The id is too long to store and list comfortably (over 1024 bytes).
    #[error("entity id '{0}…' is longer than 1024 bytes")]
    TooLong(String),
}

/// Longest id, in bytes.
const MAX_LEN: usize = 1024;

impl EntityId {
    /// The id of the entity `name` (as registered) with `key`. Checked where it is used: a
    /// name that is empty or contains `@` is refused there with a typed error (see
    /// [`EntityId::check`]).
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        EntityId {
            name: name.into(),
            key: key.into(),
        }
    }

    /// The entity's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entity's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the id can be stored and parsed back: a non-empty name without `@`, and at
    /// most 1024 bytes in all.
    pub fn check(&self) -> Result<(), EntityIdError> {
        if self.name.is_empty() {
            return Err(EntityIdError::EmptyName(self.to_string()));
        }
        if self.name.contains('@') {
            return Err(EntityIdError::AtInName(self.name.clone()));
        }
        if self.name.len() + self.key.len() + 2 > MAX_LEN {
            let mut cut = 64.min(self.name.len() + self.key.len());
            let text = format!("@{}@{}", self.name, self.key);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return Err(EntityIdError::TooLong(text[..cut].to_string()));
        }
        Ok(())
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EntityId {
    type Err = EntityIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix('@')
            .ok_or_else(|| EntityIdError::Malformed(text.to_string()))?;
        let (name, key) = rest
            .split_once('@')
            .ok_or_else(|| EntityIdError::Malformed(text.to_string()))?;
        let id = EntityId::new(name, key);
        id.check()?;
        Ok(id)
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ones_are_refused() {
        let id = EntityId::new("account", "");
        assert_eq!(id.to_string().parse::<EntityId>(), Ok(id));
        assert_eq!(
            "@@k".parse::<EntityId>(),
            Err(EntityIdError::EmptyName("@@k".into()))
        );
        assert!(matches!(
            "@name".parse::<EntityId>(),
            Err(EntityIdError::Malformed(_))
        ));
        assert!(EntityId::new("a@b", "k").check().is_err());
        assert!(EntityId::new("a", "é".repeat(600)).check().is_err());
        let json = serde_json::to_string(&EntityId::new("c", "1")).unwrap_or_default();
        assert_eq!(json, "\"@c@1\"");
    }
}
