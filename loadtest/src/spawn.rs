//! The processes `--spawn` starts: the gateway (`intentgate serve`) and the baseline servers
//! (this binary's `upstream` and `hello`), each on loopback, pinned to its cores, bounded in
//! time so nothing outlives the run, and killed when the run ends.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cpu::{self, CpuSet};

/// A started process; killed (with whatever it forked) on drop.
pub struct Process {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Process {
    /// The pid whose CPU time is the server's (behind `timeout`, the forked child).
    pub fn measured_pid(&self) -> u32 {
        let pid = self.child.id();
        cpu::children(pid).first().copied().unwrap_or(pid)
    }

    /// The end of its log, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Waits until `addr` accepts connections (and, given a path, answers it with 200).
    pub fn wait_ready(&mut self, addr: SocketAddr, health: Option<&str>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited during startup ({status}):\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            let ready = match health {
                None => TcpStream::connect(addr).is_ok(),
                Some(path) => crate::conn::Conn::open(addr)
                    .and_then(|mut c| c.get(path, ""))
                    .is_ok_and(|(status, _)| status == 200),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not become ready on {addr} within 20 s:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.child.id();
        for child in cpu::children(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Starts `program args` under `timeout` (so it ends by itself) and, when `cpus` is given
/// and `taskset` exists, confined to those CPUs.
pub fn start(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    cpus: Option<&CpuSet>,
    life: Duration,
) -> Result<Process, String> {
    let log = std::env::temp_dir().join(format!(
        "intentgate-loadtest-{}-{}.log",
        std::process::id(),
        name.replace(' ', "-")
    ));
    let file = std::fs::File::create(&log).map_err(|e| format!("cannot create {log:?}: {e}"))?;
    let mut argv: Vec<String> = Vec::new();
    if available("timeout") {
        argv.extend(["timeout".into(), "-s".into(), "KILL".into()]);
        argv.push(format!("{}", life.as_secs().max(1)));
    }
    if let Some(cpus) = cpus
        && available("taskset")
    {
        argv.extend(["taskset".into(), "-c".into(), cpus.to_list()]);
    }
    argv.push(program.display().to_string());
    argv.extend(args.iter().cloned());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(
            file.try_clone()
                .map_err(|e| format!("cannot share {log:?}: {e}"))?,
        )
        .stderr(file);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
    Ok(Process {
        name: name.to_owned(),
        child,
        log,
    })
}

/// The `intentgate` binary: the one given, else the one beside this binary, else on PATH.
pub fn gateway_binary(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("--gateway-bin: no such file: {}", p.display()))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("intentgate")));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("intentgate"))
            .find(|p| p.is_file())
    });
    on_path.ok_or_else(|| {
        "cannot find the intentgate binary beside this one or on PATH: build it \
         (cargo build --release -p intentgate) or pass --gateway-bin"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_gateway_binary_is_named() {
        let err = gateway_binary(Some(Path::new("/nonexistent/intentgate"))).unwrap_err();
        assert_eq!(err, "--gateway-bin: no such file: /nonexistent/intentgate");
        let me = std::env::current_exe().unwrap();
        assert_eq!(gateway_binary(Some(&me)).unwrap(), me);
    }
}
