//! The proxy-wasm header map wire format ("pairs"), both directions, without host calls.
//!
//! Layout (little-endian `u32`s): the number of pairs `n`, then `n` (name length, value length)
//! pairs, then each name and each value, each followed by a NUL byte. The SDK's own reader
//! `unwrap`s UTF-8 on names and indexes unchecked, so a strange name from the host would trap the
//! VM; this one returns `None` for a malformed map and keeps names that are not UTF-8 as lossy
//! text (they then match no name the filter looks for).

use std::ops::Range;

/// Parses a serialized header map. `None` if the bytes do not hold exactly one well-formed map.
pub fn parse(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    index(bytes)?
        .into_iter()
        .map(|(name, value)| {
            Some((
                String::from_utf8_lossy(bytes.get(name)?).into_owned(),
                bytes.get(value)?.to_vec(),
            ))
        })
        .collect()
}

/// Where each (name, value) of a serialized header map lies in `bytes`, in order, without
/// copying any of them. `None` exactly when `parse` says `None`.
pub fn index(bytes: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    if bytes.is_empty() {
        return Some(Vec::new()); // the host's way of saying "no headers"
    }
    let mut sizes = Reader(bytes);
    let count = usize::try_from(sizes.u32()?).ok()?;
    let index_len = count.checked_mul(8)?;
    let start = 4usize.checked_add(index_len)?;
    let mut data = Reader(bytes.get(start..)?);
    // Each pair takes at least 10 bytes, so `count` cannot ask for more than the input holds.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 10));
    for _ in 0..count {
        let name_len = usize::try_from(sizes.u32()?).ok()?;
        let value_len = usize::try_from(sizes.u32()?).ok()?;
        let at = |rest: &Reader<'_>| bytes.len() - rest.0.len();
        let name_at = at(&data);
        data.terminated(name_len)?;
        let value_at = at(&data);
        data.terminated(value_len)?;
        out.push((name_at..name_at + name_len, value_at..value_at + value_len));
    }
    data.0.is_empty().then_some(out)
}

/// Serializes `pairs` for the host (local reply headers, header map replacement).
pub fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// A cursor over the bytes still to read.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// `n` bytes followed by a NUL, which is consumed.
    fn terminated(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.take(n)?;
        (self.take(1)? == [0]).then_some(bytes)
    }
}

#[cfg(test)]
mod tests;
