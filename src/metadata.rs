//! Connection metadata: the properties a peer announced in its READY command (RFC 37),
//! plus the ones ferromq adds locally (`Peer-Address`).

use bytes::Bytes;

/// An ordered list of `name -> value` properties. Names compare case-insensitively, as
/// RFC 37 requires; values are opaque bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    props: Vec<(String, Bytes)>,
}

impl Metadata {
    /// An empty property list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the property `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        match self
            .props
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(slot) => slot.1 = value,
            None => self.props.push((name, value)),
        }
    }

    /// The value of property `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of property `name` as UTF-8 text, if present and valid.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All properties in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.props.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.props.len()
    }

    /// True when there are no properties.
    pub fn is_empty(&self) -> bool {
        self.props.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let mut m = Metadata::new();
        m.insert("Socket-Type", Bytes::from_static(b"PUSH"));
        assert_eq!(m.get_str("socket-type"), Some("PUSH"));
        m.insert("SOCKET-TYPE", Bytes::from_static(b"PULL"));
        assert_eq!(m.len(), 1);
        assert_eq!(m.get_str("Socket-Type"), Some("PULL"));
        assert!(m.get("Identity").is_none());
    }
}
