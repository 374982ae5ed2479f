use super::{parse, serialize};

fn owned(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect()
}

#[test]
fn round_trip() {
    let pairs = [
        (":path", "/a?b=c"),
        ("authorization", "Bearer x"),
        ("empty", ""),
    ];
    let parsed = parse(&serialize(&pairs)).unwrap();
    let want: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    assert_eq!(parsed, owned(&want));
}

#[test]
fn empty_input_is_an_empty_map() {
    assert_eq!(parse(b""), Some(vec![]));
    assert_eq!(parse(&serialize(&[])), Some(vec![]));
}

#[test]
fn values_stay_bytes_and_names_that_are_not_utf8_do_not_trap() {
    // One pair: name b"\xff" (1 byte), value b"\x80\x00z" (3 bytes, with an inner NUL).
    let mut bytes = vec![1, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0];
    bytes.extend_from_slice(b"\xff\0\x80\0z\0");
    let parsed = parse(&bytes).unwrap();
    assert_eq!(parsed, vec![("\u{fffd}".to_string(), b"\x80\0z".to_vec())]);
}

#[test]
fn malformed_maps_are_refused() {
    let good = serialize(&[("a", "b")]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short count", vec![1, 0]),
        ("count without index", vec![1, 0, 0, 0]),
        ("huge count", vec![0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]),
        ("truncated data", good[..good.len() - 1].to_vec()),
        ("missing NUL", {
            let mut b = good.clone();
            let i = b.len() - 1;
            b[i] = b'x';
            b
        }),
        ("trailing bytes", {
            let mut b = good.clone();
            b.push(0);
            b
        }),
        (
            "length past the end",
            vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0],
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(parse(&bytes), None, "{what}");
    }
}

#[test]
fn every_prefix_of_a_map_is_refused_without_panicking() {
    let good = serialize(&[("authorization", "Bearer t"), (":path", "/")]);
    for end in 1..good.len() {
        assert_eq!(parse(&good[..end]), None, "prefix of {end} bytes");
    }
}
