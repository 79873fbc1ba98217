//! The keys a config struct knows, read from the `FIELDS` list serde's derive hands to
//! `deserialize_struct`, so "did you mean" suggestions can never drift from the structs.
//!
//! [`known_keys`] walks the struct tree one path at a time: a probe deserializer feeds the
//! derived code a map holding just the next key on the path, and when it reaches the end it
//! records the field names it is asked for and stops the walk with an error. It sees through
//! `Option`, newtypes and [`Block`](crate::Block); a field read by a `deserialize_with`
//! function that does not end in a struct is a leaf.

use std::cell::Cell;

use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

/// Every dotted key of `T` (`logging.file-log-level`), in declaration order.
pub fn known_keys<T: DeserializeOwned>() -> Vec<String> {
    let mut found = Vec::new();
    let mut todo: Vec<Vec<&'static str>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        // The deepest struct-like values a config has are three levels down; stop runaways.
        if path.len() > 8 {
            continue;
        }
        for field in fields_at::<T>(&path) {
            let mut below = path.clone();
            below.push(field);
            found.push(below.join("."));
            todo.push(below);
        }
    }
    found.sort_by_key(|k| k.matches('.').count());
    found
}

/// The field names of `T`'s own `deserialize_struct` (empty when `T` is not a struct): what
/// [`Block`](crate::Block) passes on, so a probe sees through it.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    fields_at::<T>(&[])
}

fn fields_at<T: DeserializeOwned>(path: &[&'static str]) -> &'static [&'static str] {
    let seen = Cell::new(None);
    let _ = T::deserialize(Probe { path, seen: &seen });
    seen.get().unwrap_or(&[])
}

/// The walk's only error: it ends every probe, whether or not it found a struct.
fn stop() -> Error {
    de::Error::custom("probe stopped")
}

#[derive(Clone, Copy)]
struct Probe<'a> {
    /// The keys still to descend through.
    path: &'a [&'static str],
    seen: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'de> IntoDeserializer<'de, Error> for Probe<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(stop())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.path.split_first() {
            None => {
                self.seen.set(Some(fields));
                Err(stop())
            }
            // A map of one key whose value is the probe one level down.
            Some((key, path)) => {
                let below = Probe { path, ..self };
                visitor.visit_map(MapDeserializer::new(std::iter::once((*key, below))))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// The keys of a list's elements are those of any element (`mqtt.publish[2].qos`): a list
    /// of one element, the probe itself at the same depth.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(SeqDeserializer::new(std::iter::once(self)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map enum identifier ignored_any
    }
}

/// The known key closest to `unknown` among its siblings (same block, same parent), if it is
/// close enough to be a typo: at most a third of its letters different, and at least one.
/// Returned as `unknown` would be spelt right (`mqtt.publish[2].qos` for `…[2].qoss`).
pub fn closest<'k>(unknown: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
    let (parent, leaf) = split_leaf(unknown);
    let unindexed = without_indices(parent);
    let budget = (leaf.chars().count() / 3).max(1);
    let (_, best) = known
        .into_iter()
        .filter(|k| split_leaf(k).0 == unindexed)
        .map(|k| (edit_distance(leaf, split_leaf(k).1), split_leaf(k).1))
        .filter(|&(d, _)| d <= budget)
        .min_by_key(|&(d, _)| d)?;
    Some(match parent {
        "" => best.to_string(),
        _ => format!("{parent}.{best}"),
    })
}

/// `publish.topic` from `publish[2].topic`: known keys have no list positions.
fn without_indices(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `("a.b", "c")` from `"a.b.c"`; list positions stay with the parent (`publish[2]`).
fn split_leaf(key: &str) -> (&str, &str) {
    match key.rsplit_once('.') {
        Some((parent, leaf)) => (parent, leaf),
        None => ("", key),
    }
}

/// Edit distance over characters where swapping two neighbours counts as one edit (optimal
/// string alignment: `hots` is one edit from `host`), with `-`/`_` treated as the same (REF
/// mixes both: `ssl_verify_peer` beside `max-clients`).
fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| {
        if c == '_' {
            '-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    // d[i][j]: the distance between a[..i] and b[..j]. Keys are short: a full table is fine.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_of_neighbours_is_one_edit_and_dash_is_underscore() {
        assert_eq!(edit_distance("hots", "host"), 1);
        assert_eq!(edit_distance("max-clientz", "MAX_CLIENTS"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("frobnicate", "filter"), 7);
    }

    #[test]
    fn a_type_that_is_no_struct_has_no_keys() {
        assert!(known_keys::<u64>().is_empty());
        assert!(struct_fields::<Vec<String>>().is_empty());
    }
}
