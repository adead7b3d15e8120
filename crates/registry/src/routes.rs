//! Which Eureka operation a request line names.
//!
//! Spring Cloud serves the API under `/eureka/apps…`, the Netflix server and
//! eureka-js-client use `/eureka/v2/apps…`; both (and the bare `/apps…`) name
//! the same operations here. Path segments are percent-decoded (py-eureka-client
//! sends `host%3Aapp%3A8080`) and app names upper-cased. Parsing is kept apart
//! from the server so each route is tested without a socket.

use hyper::Method;

/// One operation of the Eureka REST API, or of lameduck's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /apps`.
    Apps,
    /// `GET /apps/delta`.
    Delta,
    /// `GET /apps/APP`.
    App(String),
    /// `POST /apps/APP`.
    Register(String),
    /// `GET /apps/APP/ID`.
    Instance(String, String),
    /// `PUT /apps/APP/ID`.
    Renew(String, String),
    /// `DELETE /apps/APP/ID`.
    Cancel(String, String),
    /// `PUT /apps/APP/ID/status?value=S`.
    SetStatus(String, String),
    /// `DELETE /apps/APP/ID/status`.
    DeleteStatus(String, String),
    /// `PUT /apps/APP/ID/metadata?k=v`.
    Metadata(String, String),
    /// `GET /instances/ID`.
    InstanceById(String),
    /// `GET /vips/VIP`.
    Vip(String),
    /// `GET /svips/SVIP`.
    SecureVip(String),
    /// `GET /lameduck/changes?after=V`: the change feed (lameduck's own).
    Changes,
}

impl Route {
    /// Whether the route changes the registry.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Route::Register(_)
                | Route::Renew(..)
                | Route::Cancel(..)
                | Route::SetStatus(..)
                | Route::DeleteStatus(..)
                | Route::Metadata(..)
        )
    }
}

/// Why a request line names no operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No such path (404).
    NotFound,
    /// The path exists for other methods (405); these are allowed.
    Method(&'static str),
}

/// Reads the operation from a method and a path (without the query).
pub fn route(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let rest = strip_prefix(path);
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = method;
    let up = |s: &str| s.to_ascii_uppercase();
    match segs.as_slice() {
        ["apps"] => only(m, Method::GET, "GET", Route::Apps),
        ["apps", "delta"] => only(m, Method::GET, "GET", Route::Delta),
        ["apps", app] => match *m {
            Method::GET => Ok(Route::App(up(app))),
            Method::POST => Ok(Route::Register(up(app))),
            _ => Err(NoRoute::Method("GET, POST")),
        },
        ["apps", app, id] => match *m {
            Method::GET => Ok(Route::Instance(up(app), id.to_string())),
            Method::PUT => Ok(Route::Renew(up(app), id.to_string())),
            Method::DELETE => Ok(Route::Cancel(up(app), id.to_string())),
            _ => Err(NoRoute::Method("GET, PUT, DELETE")),
        },
        ["apps", app, id, "status"] => match *m {
            Method::PUT => Ok(Route::SetStatus(up(app), id.to_string())),
            Method::DELETE => Ok(Route::DeleteStatus(up(app), id.to_string())),
            _ => Err(NoRoute::Method("PUT, DELETE")),
        },
        ["apps", app, id, "metadata"] => only(
            m,
            Method::PUT,
            "PUT",
            Route::Metadata(up(app), id.to_string()),
        ),
        ["instances", id] => only(m, Method::GET, "GET", Route::InstanceById(id.to_string())),
        ["vips", vip] => only(m, Method::GET, "GET", Route::Vip(vip.to_string())),
        ["svips", vip] => only(m, Method::GET, "GET", Route::SecureVip(vip.to_string())),
        ["lameduck", "changes"] => only(m, Method::GET, "GET", Route::Changes),
        _ => Err(NoRoute::NotFound),
    }
}

fn only(m: &Method, want: Method, allow: &'static str, r: Route) -> Result<Route, NoRoute> {
    if *m == want {
        Ok(r)
    } else {
        Err(NoRoute::Method(allow))
    }
}

/// `/eureka/v2/apps` → `/apps`; `/eureka/apps` → `/apps`; `/apps` stays.
fn strip_prefix(path: &str) -> &str {
    let rest = path.strip_prefix("/eureka").unwrap_or(path);
    rest.strip_prefix("/v2").unwrap_or(rest)
}

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set, for queries).
fn decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes one path segment.
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// The `key=value` pairs of a query string, decoded, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// The first value of `key` in a query string.
pub fn query_get(query: Option<&str>, key: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_prefixes_name_the_same_operations() {
        for prefix in ["/eureka", "/eureka/v2", ""] {
            let r = |m: Method, p: &str| route(&m, &format!("{prefix}{p}"));
            assert_eq!(r(Method::GET, "/apps/"), Ok(Route::Apps));
            assert_eq!(r(Method::GET, "/apps/delta"), Ok(Route::Delta));
            assert_eq!(
                r(Method::POST, "/apps/web"),
                Ok(Route::Register("WEB".into()))
            );
            assert_eq!(
                r(Method::PUT, "/apps/WEB/h%3Aweb%3A80"),
                Ok(Route::Renew("WEB".into(), "h:web:80".into()))
            );
            assert_eq!(
                r(Method::DELETE, "/apps/WEB/i/status"),
                Ok(Route::DeleteStatus("WEB".into(), "i".into()))
            );
            assert_eq!(r(Method::GET, "/svips/s"), Ok(Route::SecureVip("s".into())));
        }
    }

    #[test]
    fn wrong_methods_and_paths_are_told_apart() {
        assert_eq!(
            route(&Method::POST, "/eureka/apps"),
            Err(NoRoute::Method("GET"))
        );
        assert_eq!(
            route(&Method::PATCH, "/eureka/apps/A/i"),
            Err(NoRoute::Method("GET, PUT, DELETE"))
        );
        assert_eq!(route(&Method::GET, "/eureka/nope"), Err(NoRoute::NotFound));
    }

    #[test]
    fn queries_are_decoded() {
        let q = Some("value=OUT_OF_SERVICE&lastDirtyTimestamp=17&a+b=c%2Fd&flag");
        assert_eq!(query_get(q, "value").as_deref(), Some("OUT_OF_SERVICE"));
        assert_eq!(query_get(q, "a b").as_deref(), Some("c/d"));
        assert_eq!(query_get(q, "flag").as_deref(), Some(""));
        assert_eq!(query_get(q, "missing"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
