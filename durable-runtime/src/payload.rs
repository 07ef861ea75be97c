//! Serialized values crossing the durable boundary: inputs, outputs, results.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;
use std::sync::Arc;

/// A JSON document as stored in history and sent over HTTP.
///
/// Kept as raw text so that it is parsed only by the code that knows its type, and so that
/// history rows embed it verbatim (readable with `sqlite3` or `jq`).
///
/// ```
/// use durable_runtime::Payload;
/// let p = Payload::encode(&vec![1, 2, 3]).unwrap();
/// assert_eq!(p.as_str(), "[1,2,3]");
/// let back: Vec<u32> = p.decode().unwrap();
/// assert_eq!(back, vec![1, 2, 3]);
/// ```
///
/// Cloning is cheap (a reference count): a payload travels from a client through the store,
/// the engine and history without its text being copied.
#[derive(Clone)]
pub struct Payload(Arc<Box<RawValue>>);

impl Payload {
    /// Serializes `value` as JSON.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Payload::from_raw)
    }

    /// Parses `text`, checking that it is one well-formed JSON document.
    pub fn from_json(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(Payload::from_raw)
    }

    /// The JSON `null` document, the encoding of `()`.
    pub fn null() -> Self {
        Payload::from_json("null").unwrap_or_else(|_| unreachable!("`null` is valid JSON"))
    }

    /// Deserializes the document into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

/// Payloads compare by their JSON text.
impl Payload {
    fn from_raw(raw: Box<RawValue>) -> Self {
        Payload(Arc::new(raw))
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Payload::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_json() {
        assert!(Payload::from_json("{not json").is_err());
    }

    #[test]
    fn null_decodes_as_unit() {
        let unit: () = Payload::null().decode().expect("null is unit");
        assert_eq!(unit, ());
    }
}
