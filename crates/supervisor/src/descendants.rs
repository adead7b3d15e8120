//! Finding what is left when the app exits: every descendant of lameduck.
//!
//! Processes that escaped the app's process group (daemons that called `setsid`,
//! grandchildren of a crashed parent) are re-parented to lameduck when it is PID 1
//! or a child subreaper. Walking `/proc` from our own PID finds all of them, in or
//! out of the app's group, so none is left running or killed without a warning.

use std::{collections::HashMap, fs};

use nix::{
    sys::signal::{kill, Signal},
    unistd::{getpid, Pid},
};

/// The parent of every process we can see, read from `/proc/PID/stat`.
fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| ppid_of(&s))
        {
            map.insert(pid, ppid);
        }
    }
    map
}

/// Field 4 of `/proc/PID/stat`, read after the last `)` since the command name
/// may itself contain spaces and parentheses.
fn ppid_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of this process (zombies included until reaped).
pub(crate) fn descendants() -> Vec<Pid> {
    let parents = parents();
    let me = getpid().as_raw();
    let mut out = Vec::new();
    for &pid in parents.keys() {
        let mut cur = pid;
        // Bounded walk up the tree, in case /proc changed under us into a cycle.
        for _ in 0..parents.len() {
            match parents.get(&cur) {
                Some(&p) if p == me => {
                    out.push(Pid::from_raw(pid));
                    break;
                }
                Some(&p) if p > 0 && p != cur => cur = p,
                _ => break,
            }
        }
    }
    out
}

/// Sends `sig` to every descendant; returns how many it was sent to.
pub(crate) fn signal_all(sig: Signal) -> usize {
    descendants()
        .into_iter()
        .filter(|&pid| kill(pid, sig).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_survives_odd_command_names() {
        assert_eq!(ppid_of("42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_of("1 (init) S 0 1 1"), Some(0));
        assert_eq!(ppid_of("garbage"), None);
    }

    #[test]
    fn a_child_is_a_descendant() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let found = descendants().contains(&pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found);
    }
}
