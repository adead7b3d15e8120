//! Hop-by-hop header fields (RFC 9110 §7.6.1): the one list, and the rule
//! that removes them (with the fields `Connection` names) before a message
//! goes on to the next hop.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The fields that belong to one hop and are never forwarded (the last one,
/// `Upgrade`, except on upgrades), in lower case: the one list.
pub const NAMES: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// [`NAMES`] as header names. A `static`: a `const` array of names would be
/// built and dropped again at every use.
pub static HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static(NAMES[0]),
    HeaderName::from_static(NAMES[1]),
    HeaderName::from_static(NAMES[2]),
    HeaderName::from_static(NAMES[3]),
    HeaderName::from_static(NAMES[4]),
    HeaderName::from_static(NAMES[5]),
    HeaderName::from_static(NAMES[6]),
    HeaderName::from_static(NAMES[7]),
    HeaderName::from_static(NAMES[8]),
];

/// Whether `name` (any case) is a hop-by-hop field.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    NAMES
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Removes hop-by-hop headers (and those the `Connection` header names). `TE:
/// trailers` survives, as gRPC needs it; `Upgrade` survives when `upgrade`.
///
/// One pass over the fields finds what must go, without allocating for the
/// usual `Connection: keep-alive` or `close`; most requests have nothing to
/// remove, and then nothing else is done.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let kept = if upgrade {
        HOP_BY_HOP.len() - 1
    } else {
        HOP_BY_HOP.len()
    };
    let hop_by_hop = &HOP_BY_HOP[..kept];
    // Bit i: hop_by_hop[i] is present.
    let mut found: u16 = 0;
    // Other fields that `Connection` names (rare).
    let mut named: Vec<HeaderName> = Vec::new();
    let mut te_trailers = false;
    for (name, value) in headers.iter() {
        if let Some(i) = hop_by_hop.iter().position(|h| h == name) {
            found |= 1 << i;
        }
        if name == header::CONNECTION {
            named.extend(connection_names(value));
        } else if name == header::TE {
            te_trailers |= tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"trailers"));
        }
    }
    if found == 0 && named.is_empty() {
        return;
    }
    for (i, name) in hop_by_hop.iter().enumerate() {
        if found & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in &named {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The comma-separated tokens of a field value, trimmed, empty ones skipped.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The fields a `Connection` value names, other than the hop-by-hop ones
/// (removed anyway, or kept on upgrades) and `close`.
fn connection_names(value: &HeaderValue) -> impl Iterator<Item = HeaderName> + '_ {
    tokens(value.as_bytes())
        .filter(|t| !t.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(t))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_names_and_the_header_names_are_one_list() {
        for (name, header) in NAMES.iter().zip(&HOP_BY_HOP) {
            assert_eq!(*name, header.as_str());
            assert!(is_hop_by_hop(name.to_ascii_uppercase().as_bytes()));
        }
        assert!(!is_hop_by_hop(b"content-length"));
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut map = headers(&[
            ("host", "a"),
            ("connection", "keep-alive, x-secret"),
            ("connection", "upgrade"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "gzip, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "basic x"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), ["host", "te", "x-kept"]);
        assert_eq!(map["te"], "trailers");
    }

    #[test]
    fn an_upgrade_keeps_upgrade() {
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut map, true);
        assert_eq!(names(&map), ["upgrade"]);
    }

    #[test]
    fn nothing_to_strip_leaves_the_map_alone() {
        let mut map = headers(&[("host", "a"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), ["accept", "host"]);
    }
}
