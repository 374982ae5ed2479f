//! Required claims of a requirement (our `required_claims`): a verified token's claim must
//! equal a value, be one of several, or be an array that contains a value. Pure, and only ever
//! given a verified token (`verify::Verified`).
//!
//! Values are JSON scalars compared by type: `"true"` is not `true`, `"7"` is not `7`;
//! numbers compare by value (`1` equals `1.0`). A missing claim fails every test.

use serde_json::Value;

use crate::claim_path::claim;
use crate::verify::Verified;

/// One entry of `required_claims`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    /// The claim path, split at dots.
    pub path: Vec<String>,
    pub test: ClaimTest,
}

/// What the claim must satisfy. Every value is a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTest {
    /// The claim is this value (`true` / `false` for a boolean claim).
    Equals(Value),
    /// The claim is one of these values.
    OneOf(Vec<Value>),
    /// The claim is an array with this value among its members.
    Contains(Value),
}

impl ClaimRule {
    /// Whether `token` satisfies the rule.
    pub fn matches(&self, token: &Verified) -> bool {
        let Some(value) = claim(token.payload(), &self.path) else {
            return false;
        };
        match &self.test {
            ClaimTest::Equals(want) => same(value, want),
            ClaimTest::OneOf(wants) => wants.iter().any(|want| same(value, want)),
            ClaimTest::Contains(want) => value
                .as_array()
                .is_some_and(|items| items.iter().any(|item| same(item, want))),
        }
    }
}

/// Whether `v` may be a rule's value: a string, a number or a boolean.
pub fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Scalar equality; numbers by value, whatever their JSON spelling.
fn same(claim: &Value, want: &Value) -> bool {
    match (claim, want) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
