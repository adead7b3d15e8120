//! Picking the upstream for a request: by listener, host and path prefix.
//!
//! Rules, in order: an exact host beats a `*.suffix` wildcard, which beats `*`;
//! among routes with the same host rule, the longest path prefix wins; ties go
//! to the route written first. A path prefix matches whole segments only when it
//! ends without `/`: `/api` matches `/api` and `/api/x` but not `/apix`.

use crate::config::Route;

/// The routes of one listener, ready for matching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Keeps the routes of `listener`.
    pub(crate) fn new(routes: &[Route], listener: &str) -> Router {
        Router {
            routes: routes
                .iter()
                .filter(|r| r.listener == listener)
                .cloned()
                .collect(),
        }
    }

    /// The upstream name for `host` (without port) and `path`, if any route matches.
    pub(crate) fn pick(&self, host: &str, path: &str) -> Option<&str> {
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let host_rank = host_rank(&r.host, host)?;
                path_matches(&r.path_prefix, path).then_some((
                    host_rank,
                    r.path_prefix.len(),
                    usize::MAX - i,
                    r,
                ))
            })
            .max_by_key(|(h, p, order, _)| (*h, *p, *order))
            .map(|(_, _, _, r)| r.upstream.as_str())
    }
}

/// 2 for an exact host, 1 for a matching `*.suffix`, 0 for `*`; `None` if no
/// match. `rule` is lower case (the config is); `host` is compared without
/// regard to case, and without allocating.
fn host_rank(rule: &str, host: &str) -> Option<u8> {
    let (rule_b, host_b) = (rule.as_bytes(), host.as_bytes());
    if rule == "*" {
        Some(0)
    } else if let Some(suffix) = rule_b.strip_prefix(b"*.") {
        let n = host_b.len();
        let fits = n > suffix.len() + 1
            && host_b[n - suffix.len()..].eq_ignore_ascii_case(suffix)
            && host_b[n - suffix.len() - 1] == b'.';
        fits.then_some(1)
    } else {
        rule_b.eq_ignore_ascii_case(host_b).then_some(2)
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'))
}

/// The host of a request, without port: the `Host` header, else the URI's authority.
pub(crate) fn request_host<B>(req: &hyper::Request<B>) -> &str {
    let raw = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, prefix: &str, upstream: &str) -> Route {
        Route {
            listener: "web".into(),
            host: host.into(),
            path_prefix: prefix.into(),
            upstream: upstream.into(),
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let routes = vec![
            route("*", "/", "default"),
            route("*", "/api", "api"),
            route("*.example.com", "/", "wild"),
            route("shop.example.com", "/", "shop"),
            route("shop.example.com", "/api/v2/", "shop-v2"),
        ];
        let r = Router::new(&routes, "web");
        assert_eq!(r.pick("other.org", "/"), Some("default"));
        assert_eq!(r.pick("other.org", "/api/x"), Some("api"));
        assert_eq!(r.pick("other.org", "/apix"), Some("default"));
        assert_eq!(r.pick("a.example.com", "/api"), Some("wild"));
        assert_eq!(r.pick("SHOP.example.com", "/x"), Some("shop"));
        assert_eq!(r.pick("shop.example.com", "/api/v2/items"), Some("shop-v2"));
        assert_eq!(r.pick("example.com", "/"), Some("default"));
    }

    #[test]
    fn other_listeners_routes_are_ignored() {
        let mut admin = route("*", "/", "x");
        admin.listener = "other".into();
        assert_eq!(Router::new(&[admin], "web").pick("h", "/"), None);
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
