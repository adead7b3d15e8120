//! The admin listener's bearer token, and the rule that asks for one off
//! loopback.
//!
//! Whoever reaches an admin listener can change state (the proxy's admin API
//! reroutes all traffic), so bound on a loopback address it asks for
//! nothing (reach it with `kubectl exec` or a port-forward) and bound
//! anywhere else it must have a token. The token is compared in constant
//! time and never printed.

use std::net::SocketAddr;

/// A bearer token; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// An admin listener off loopback without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{addr} is off loopback, and the admin API changes state: it needs a bearer token")]
pub struct NeedsToken {
    /// The address it was to listen on.
    pub addr: SocketAddr,
}

impl Token {
    /// A token from its text (surrounding white space removed); `None` when
    /// nothing is left.
    pub fn new(text: &str) -> Option<Token> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token(text.to_string()))
    }

    /// Whether an `Authorization` header value carries this token
    /// (`Bearer TOKEN`); compared in constant time for its length.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let want = self.0.as_bytes();
        given.len() == want.len()
            && given
                .iter()
                .zip(want)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The rule: an admin listener on `addr` needs a token unless `addr` is
    /// a loopback address.
    pub fn check_bind(addr: SocketAddr, token: Option<&Token>) -> Result<(), NeedsToken> {
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(NeedsToken { addr });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let t = Token::new(" s3cret\n").unwrap();
        assert!(t.accepts(Some(b"Bearer s3cret")));
        for wrong in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"s3cret",
            b"Basic s3cret",
        ] {
            assert!(
                !t.accepts(Some(wrong)),
                "{:?}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert!(!t.accepts(None));
        assert!(Token::new("  \n").is_none());
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[test]
    fn off_loopback_a_token_is_required() {
        let t = Token::new("x");
        let on = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(Token::check_bind(on("127.0.0.1:9"), None).is_ok());
        assert!(Token::check_bind(on("[::1]:9"), None).is_ok());
        assert_eq!(
            Token::check_bind(on("0.0.0.0:9"), None),
            Err(NeedsToken {
                addr: on("0.0.0.0:9")
            })
        );
        assert!(Token::check_bind(on("0.0.0.0:9"), t.as_ref()).is_ok());
    }
}
