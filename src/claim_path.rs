//! Dotted claim paths (`realm_access.roles`): parsed once at load, looked up per token. A leaf:
//! configuration, scopes, claim rules and propagation all use it, and it uses none of them.

use serde_json::{Map, Value};

/// A claim name or dotted path into nested objects: `realm_access.roles` → both segments;
/// `None` when a segment is empty (`a..b`, `.a`, `""`).
pub fn parse(name: &str) -> Option<Vec<String>> {
    let path: Vec<String> = name.split('.').map(str::to_owned).collect();
    (!path.iter().any(String::is_empty)).then_some(path)
}

/// The value at a dotted claim path.
pub fn claim<'p>(payload: &'p Map<String, Value>, path: &[String]) -> Option<&'p Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(payload.get(first)?, |value, key| {
        value.as_object()?.get(key)
    })
}
