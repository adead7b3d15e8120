//! A Deployment's update strategy as numbers: Kubernetes' own arithmetic for
//! `maxSurge` and `maxUnavailable`, and the steps its Deployment controller
//! takes (`pkg/controller/deployment/rolling.go`), as pure functions.
//!
//! Kept apart from the processes so the arithmetic is tested on its own: surge
//! rounds up, unavailable rounds down, and when both come out 0 unavailable
//! becomes 1 (`ResolveFenceposts`).

use crate::manifest::{Deployment, IntOrString, ManifestError};

/// The strategy to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `RollingUpdate`, with `maxSurge` and `maxUnavailable` resolved to pods.
    Rolling { surge: u32, unavailable: u32 },
    /// `Recreate`: every old pod gone before the first new one starts.
    Recreate,
}

impl Strategy {
    /// Reads and resolves `spec.strategy` of `d` for its replica count.
    pub fn of(path: &str, d: &Deployment) -> Result<Strategy, ManifestError> {
        let invalid = |field: &str, message: String| ManifestError::Invalid {
            path: path.to_string(),
            field: format!("spec.strategy.{field}"),
            message,
        };
        match d.spec.strategy.kind.as_deref().unwrap_or("RollingUpdate") {
            "Recreate" => return Ok(Strategy::Recreate),
            "RollingUpdate" => {}
            other => {
                return Err(invalid(
                    "type",
                    format!("{other:?}: must be RollingUpdate or Recreate"),
                ))
            }
        }
        let ru = d.spec.strategy.rolling_update.clone().unwrap_or_default();
        let quarter = IntOrString::Str("25%".into());
        let surge = ru.max_surge.unwrap_or_else(|| quarter.clone());
        let unavailable = ru.max_unavailable.unwrap_or(quarter);
        let replicas = d.replicas();
        let s = scaled(&surge, replicas, true).map_err(|m| invalid("rollingUpdate.maxSurge", m))?;
        let u = scaled(&unavailable, replicas, false)
            .map_err(|m| invalid("rollingUpdate.maxUnavailable", m))?;
        if is_zero(&surge) && is_zero(&unavailable) {
            return Err(invalid(
                "rollingUpdate.maxUnavailable",
                "may not be 0 when maxSurge is 0".into(),
            ));
        }
        if let IntOrString::Str(p) = &unavailable {
            if percent(p).is_ok_and(|p| p > 100) {
                return Err(invalid(
                    "rollingUpdate.maxUnavailable",
                    format!("{p}: must not be greater than 100%"),
                ));
            }
        }
        Ok(resolve_fenceposts(s, u))
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::Recreate => write!(f, "Recreate"),
            Strategy::Rolling { surge, unavailable } => {
                write!(
                    f,
                    "RollingUpdate (maxSurge {surge}, maxUnavailable {unavailable})"
                )
            }
        }
    }
}

/// Both 0 after rounding: unavailable becomes 1, as Kubernetes does.
pub fn resolve_fenceposts(surge: u32, unavailable: u32) -> Strategy {
    if surge == 0 && unavailable == 0 {
        Strategy::Rolling {
            surge: 0,
            unavailable: 1,
        }
    } else {
        Strategy::Rolling { surge, unavailable }
    }
}

/// An absolute number, or a percentage of `total` rounded up or down
/// (`GetScaledValueFromIntOrPercent`).
pub(crate) fn scaled(v: &IntOrString, total: u32, round_up: bool) -> Result<u32, String> {
    match v {
        IntOrString::Int(n) if *n < 0 => Err(format!("{n}: must be 0 or more")),
        IntOrString::Int(n) => Ok((*n).min(u32::MAX as i64) as u32),
        IntOrString::Str(s) => {
            let p = percent(s)?;
            let x = u64::from(p) * u64::from(total);
            let v = if round_up { x.div_ceil(100) } else { x / 100 };
            Ok(v.min(u64::from(u32::MAX)) as u32)
        }
    }
}

fn percent(s: &str) -> Result<u32, String> {
    s.strip_suffix('%')
        .and_then(|n| n.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("{s:?}: must be a number or a percentage such as \"25%\""))
}

fn is_zero(v: &IntOrString) -> bool {
    match v {
        IntOrString::Int(n) => *n == 0,
        IntOrString::Str(s) => percent(s) == Ok(0),
    }
}

/// The counts the Deployment controller looks at in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// `spec.replicas` of the new ReplicaSet.
    pub new_wanted: u32,
    /// Its pods that are available (ready for `minReadySeconds`, not deleted).
    pub new_available: u32,
    /// `spec.replicas` of the old ReplicaSet(s).
    pub old_wanted: u32,
    /// Old pods available.
    pub old_available: u32,
}

/// One pass of `rolloutRolling`: the new ReplicaSet's and the old one's
/// `spec.replicas` after it. Pods being deleted are in neither count, as in
/// Kubernetes (their ReplicaSet no longer counts them).
pub fn rolling_step(desired: u32, surge: u32, unavailable: u32, c: Counts) -> (u32, u32) {
    // reconcileNewReplicaSet
    let mut new_wanted = c.new_wanted;
    if new_wanted > desired {
        new_wanted = desired;
    } else if new_wanted < desired {
        // maxSurge may be any count (4294967295 too): saturate, not wrap.
        let max_total = desired.saturating_add(surge);
        let current = new_wanted + c.old_wanted;
        if current < max_total {
            let up = (max_total - current).min(desired - new_wanted);
            new_wanted += up;
        }
    }
    // reconcileOldReplicaSets
    let mut old_wanted = c.old_wanted;
    if old_wanted > 0 {
        let all = new_wanted + old_wanted;
        let min_available = desired.saturating_sub(unavailable);
        let new_unavailable = new_wanted.saturating_sub(c.new_available);
        let max_scaled_down = all as i64 - min_available as i64 - new_unavailable as i64;
        if max_scaled_down > 0 {
            // cleanupUnhealthyReplicas: old pods that are not available go first.
            let old_unhealthy = old_wanted.saturating_sub(c.old_available);
            let cleaned = old_unhealthy.min(max_scaled_down as u32);
            old_wanted -= cleaned;
            // scaleDownOldReplicaSetsForRollingUpdate
            let available = c.new_available + c.old_available;
            if available > min_available {
                let down = (available - min_available).min(old_wanted);
                old_wanted -= down;
            }
        }
    }
    (new_wanted, old_wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::Str(s.into())
    }

    #[test]
    fn a_surge_as_large_as_u32_rolls_out_instead_of_overflowing() {
        // `maxSurge: 4294967295` overflowed `desired + surge` (a panic in
        // debug builds; in release the sum wrapped and no new pod started).
        let start = Counts {
            old_wanted: 3,
            old_available: 3,
            ..Counts::default()
        };
        assert_eq!(rolling_step(3, u32::MAX, 0, start), (3, 3));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        // 25% of 3 = 0.75: surge 1, unavailable 0 (the defaults on 3 replicas).
        assert_eq!(scaled(&pct("25%"), 3, true), Ok(1));
        assert_eq!(scaled(&pct("25%"), 3, false), Ok(0));
        // 25% of 10 = 2.5: 3 and 2.
        assert_eq!(scaled(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled(&pct("100%"), 4, false), Ok(4));
        assert_eq!(scaled(&IntOrString::Int(2), 10, true), Ok(2));
        assert!(scaled(&pct("a lot"), 3, true).is_err());
        assert!(scaled(&IntOrString::Int(-1), 3, true).is_err());
    }

    fn of(replicas: u32, strategy: &str) -> Result<Strategy, ManifestError> {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  replicas: {replicas}\n  strategy: {strategy}\n  template:\n    spec:\n      containers: [{{name: c, command: [\"true\"]}}]\n"
        );
        let d = crate::manifest::parse("d.yaml", &text).unwrap();
        Strategy::of("d.yaml", &d)
    }

    #[test]
    fn manifests_resolve_as_kubernetes_resolves_them() {
        let rolling = |surge, unavailable| Strategy::Rolling { surge, unavailable };
        // The defaults, 25% and 25%, on 3 and on 10 replicas.
        assert_eq!(of(3, "{}").unwrap(), rolling(1, 0));
        assert_eq!(of(10, "{}").unwrap(), rolling(3, 2));
        assert_eq!(
            of(
                4,
                "{rollingUpdate: {maxSurge: \"50%\", maxUnavailable: \"50%\"}}"
            )
            .unwrap(),
            rolling(2, 2)
        );
        // maxSurge 0 and 25% of 1 replica (rounds down to 0): unavailable 1.
        assert_eq!(
            of(1, "{rollingUpdate: {maxSurge: 0, maxUnavailable: \"25%\"}}").unwrap(),
            rolling(0, 1)
        );
        assert_eq!(of(3, "{type: Recreate}").unwrap(), Strategy::Recreate);
        // What the API server refuses.
        let e = of(3, "{rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}").unwrap_err();
        assert!(e.to_string().contains("may not be 0"), "{e}");
        let e = of(3, "{rollingUpdate: {maxUnavailable: \"150%\"}}").unwrap_err();
        assert!(e.to_string().contains("100%"), "{e}");
        let e = of(3, "{type: BlueGreen}").unwrap_err();
        assert!(e.to_string().contains("spec.strategy.type"), "{e}");
        let e = of(3, "{rollingUpdate: {maxSurge: lots}}").unwrap_err();
        assert!(e.to_string().contains("maxSurge"), "{e}");
    }

    #[test]
    fn both_zero_after_rounding_makes_unavailable_one() {
        // maxSurge 0, maxUnavailable 25% of 1 replica rounds down to 0.
        assert_eq!(
            resolve_fenceposts(0, 0),
            Strategy::Rolling {
                surge: 0,
                unavailable: 1
            }
        );
    }

    /// Plays the controller with pods that become available by the next pass,
    /// and returns the (new, old) pod counts after each pass.
    fn play(desired: u32, surge: u32, unavailable: u32) -> Vec<(u32, u32)> {
        let mut c = Counts {
            old_wanted: desired,
            old_available: desired,
            ..Counts::default()
        };
        let mut steps = Vec::new();
        while steps.len() < 50 {
            let (n, o) = rolling_step(desired, surge, unavailable, c);
            steps.push((n, o));
            if (n, o) == (desired, 0) {
                break;
            }
            c = Counts {
                new_wanted: n,
                new_available: n,
                old_wanted: o,
                old_available: o,
            };
        }
        steps
    }

    #[test]
    fn max_surge_one_max_unavailable_zero_replaces_one_at_a_time() {
        let steps = play(3, 1, 0);
        // Never fewer than 3 available, never more than 4 pods.
        assert_eq!(steps[0], (1, 3), "{steps:?}");
        assert_eq!(steps[1], (1, 2), "{steps:?}");
        assert!(steps.iter().all(|(n, o)| n + o <= 4), "{steps:?}");
        assert_eq!(*steps.last().unwrap(), (3, 0), "{steps:?}");
    }

    #[test]
    fn max_unavailable_lets_old_pods_go_before_new_ones_are_ready() {
        // surge 0, unavailable 1: first an old pod goes, then a new one comes.
        let (n, o) = rolling_step(
            3,
            0,
            1,
            Counts {
                old_wanted: 3,
                old_available: 3,
                ..Counts::default()
            },
        );
        assert_eq!((n, o), (0, 2));
        let (n, o) = rolling_step(
            3,
            0,
            1,
            Counts {
                old_wanted: 2,
                old_available: 2,
                ..Counts::default()
            },
        );
        assert_eq!((n, o), (1, 2));
    }

    #[test]
    fn an_unready_new_pod_holds_the_old_ones() {
        let c = Counts {
            new_wanted: 1,
            new_available: 0,
            old_wanted: 3,
            old_available: 3,
        };
        assert_eq!(rolling_step(3, 1, 0, c), (1, 3));
    }

    #[test]
    fn unhealthy_old_pods_are_removed_first() {
        // Two old pods are not ready: one may go although that leaves fewer
        // than 3 available (it was not available anyway).
        let c = Counts {
            new_wanted: 1,
            new_available: 1,
            old_wanted: 3,
            old_available: 1,
        };
        let (_, o) = rolling_step(3, 1, 0, c);
        assert_eq!(o, 2);
    }
}
