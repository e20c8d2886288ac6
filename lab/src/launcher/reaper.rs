//! The reaper: a tiny watchdog process (`tracelab reap`) that kills the stack's children if the
//! process that started them dies without stopping them (SIGKILL, panic with `abort`, a test
//! binary exiting with the stack in a `static`).
//!
//! The owner writes `pid N` for every child it spawns into the reaper's stdin and `done` after a
//! clean shutdown. When stdin reaches EOF without `done` — the owner is gone, the kernel closed its
//! end of the pipe — the reaper sends SIGTERM to each child's process group, waits a bounded
//! time, then SIGKILLs the survivors. This needs no `unsafe` (unlike `PR_SET_PDEATHSIG` in a
//! `pre_exec` hook, which also fires when the *spawning thread* exits, a trap with tokio).

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

/// Handle held by the stack owner; the child's stdin is the lifeline.
#[derive(Debug)]
pub struct Reaper {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
}

impl Reaper {
    /// Spawns `tracelab reap` from `tracelab_bin`.
    pub fn spawn(tracelab_bin: &Path) -> std::io::Result<Self> {
        let mut child = tokio::process::Command::new(tracelab_bin)
            .arg("reap")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C in the terminal must not kill the watchdog before
            // the launcher has finished its orderly shutdown.
            .process_group(0)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("reaper stdin"))?;
        Ok(Self { child, stdin })
    }

    pub async fn watch(&mut self, pid: u32) -> std::io::Result<()> {
        self.stdin
            .write_all(format!("pid {pid}\n").as_bytes())
            .await?;
        self.stdin.flush().await
    }

    /// Tells the reaper everything was stopped cleanly and waits for it to exit.
    pub async fn release(mut self) {
        let _ = self.stdin.write_all(b"done\n").await;
        let _ = self.stdin.flush().await;
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Body of `tracelab reap`: blocks on stdin, then cleans up. `grace` bounds the SIGTERM wait.
pub fn run(grace: Duration) {
    let mut pids: Vec<i32> = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == "done" {
            return;
        }
        if let Some(pid) = line
            .strip_prefix("pid ")
            .and_then(|p| p.parse::<i32>().ok())
        {
            pids.push(pid);
        }
    }
    terminate_all(&pids, grace);
}

/// SIGTERM every process group, wait up to `grace` for them to go, SIGKILL what is left.
pub fn terminate_all(pids: &[i32], grace: Duration) {
    for &pid in pids {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in pids {
        if alive(pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}
