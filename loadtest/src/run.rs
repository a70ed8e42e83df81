//! The load test itself: set up the targets (a running gateway, or one spawned with its
//! upstream stub), mint the tokens, check every scenario is answered as it must be, then
//! measure the gateway and each baseline with the same requests on the same cores, load step
//! by load step, and report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::conn::Conn;
use crate::cpu::{self, CpuSet};
use crate::engine::{self, Job, Load};
use crate::outcome::{Outcome, classify};
use crate::report::{self, RunReport};
use crate::scenario::{self, Mix, Scenario, Tokens};
use crate::spawn::{self, Process};

/// Proxy (forward allowed calls to the upstream) or decision-only (no upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Proxy,
    Decision,
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A gateway already running: its data-plane URL.
    Url { addr: SocketAddr, path: String },
    /// Start `intentgate serve` (and the upstream stub) for this run.
    Spawn { mode: Mode, bin: Option<PathBuf> },
}

/// Command-line options of the load test.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub master_key: Option<String>,
    pub upstream: Option<SocketAddr>,
    pub server_pid: Option<u32>,
    pub baselines: Vec<&'static str>,
    pub loads: Vec<Load>,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connections: usize,
    pub threads: Option<usize>,
    pub cpus: Cpus,
    pub mix: Mix,
    pub tokens: usize,
    pub rounds: usize,
    pub json: bool,
}

/// The cores of each party.
#[derive(Debug, Clone)]
pub struct Cpus {
    pub client: Option<CpuSet>,
    pub gateway: Option<CpuSet>,
    pub upstream: Option<CpuSet>,
}

impl Cpus {
    /// On two or more cores: the servers on core 0, the client on the last one.
    fn default_for_machine() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            client: Some(CpuSet::single(n.saturating_sub(1))),
            gateway: Some(CpuSet::single(0)),
            upstream: Some(CpuSet::single(0)),
        }
    }

    /// `client=1,gateway=0,upstream=0` (lists inside a role with `+` or `-`).
    fn parse(text: &str) -> Result<Self, String> {
        let mut c = Self::default_for_machine();
        for part in text.split(',') {
            let (role, list) = part
                .split_once('=')
                .ok_or_else(|| format!("--cpus: {part:?} is not role=cpus"))?;
            let set = Some(CpuSet::parse(list).map_err(|e| format!("--cpus: {e}"))?);
            match role.trim() {
                "client" => c.client = set,
                "gateway" => c.gateway = set,
                "upstream" => c.upstream = set,
                other => {
                    return Err(format!(
                        "--cpus: unknown role {other:?} (client, gateway, upstream)"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// `20s`, `500ms`, `2m` or plain seconds.
pub fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("{flag}: not a duration: {text:?} (e.g. 20s, 500ms, 2m)");
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{flag}: between 1ms and 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn loads(text: &str) -> Result<Vec<Load>, String> {
    text.split(',')
        .map(|part| match part.trim() {
            "max" => Ok(Load::Max),
            r => r
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 1.0 && *r <= 10_000_000.0)
                .map(Load::Rate)
                .ok_or_else(|| {
                    format!("--rate: {r:?} is neither max nor a rate in requests/s (e.g. 5000,10000,20000)")
                }),
        })
        .collect()
}

/// `http://127.0.0.1:8080[/path]`: loopback only, HTTP only.
fn url(flag: &str, text: &str) -> Result<(SocketAddr, String), String> {
    let rest = text
        .strip_prefix("http://")
        .ok_or_else(|| format!("{flag}: an http:// URL (the load test speaks plain HTTP/1.1)"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    let addr = crate::options::loopback(flag, &hostport)?;
    Ok((addr, path.to_owned()))
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut target_url = None;
        let mut spawn = false;
        let mut mode = Mode::Proxy;
        let mut bin = None;
        let mut o = Self {
            target: Target::Spawn {
                mode: Mode::Proxy,
                bin: None,
            },
            admin: None,
            admin_token: None,
            master_key: None,
            upstream: None,
            server_pid: None,
            baselines: Vec::new(),
            loads: vec![Load::Max],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            connections: 32,
            threads: None,
            cpus: Cpus::default_for_machine(),
            mix: Mix::parse("allow=1")?,
            tokens: 16,
            rounds: 1,
            json: false,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--spawn" => spawn = true,
                "--json" => o.json = true,
                "--target" => target_url = Some(url(flag, value()?)?),
                "--mode" => {
                    mode = match value()?.as_str() {
                        "proxy" => Mode::Proxy,
                        "decision" => Mode::Decision,
                        other => return Err(format!("--mode: proxy or decision, not {other:?}")),
                    }
                }
                "--gateway-bin" => bin = Some(PathBuf::from(value()?)),
                "--admin-url" => o.admin = Some(url(flag, value()?)?.0),
                "--admin-token" => o.admin_token = Some(value()?.clone()),
                "--master-key" => o.master_key = Some(value()?.clone()),
                "--upstream" => o.upstream = Some(url(flag, value()?)?.0),
                "--server-pid" => o.server_pid = Some(crate::options::positive(flag, value()?)?),
                "--baseline" => {
                    let b = match value()?.as_str() {
                        "direct" => "direct",
                        "hello" => "hello",
                        other => {
                            return Err(format!("--baseline: direct or hello, not {other:?}"));
                        }
                    };
                    if !o.baselines.contains(&b) {
                        o.baselines.push(b);
                    }
                }
                "--rate" => o.loads = loads(value()?)?,
                "--duration" => o.duration = duration(flag, value()?)?,
                "--warmup" => {
                    let v = value()?;
                    o.warmup = if v == "0" {
                        Duration::ZERO
                    } else {
                        duration(flag, v)?
                    };
                }
                "--timeout" => o.timeout = duration(flag, value()?)?,
                "--connections" => o.connections = crate::options::positive(flag, value()?)?,
                "--threads" => o.threads = Some(crate::options::positive(flag, value()?)?),
                "--cpus" => o.cpus = Cpus::parse(value()?)?,
                "--mix" => o.mix = Mix::parse(value()?)?,
                "--tokens" => o.tokens = crate::options::positive(flag, value()?)?,
                "--rounds" => o.rounds = crate::options::positive(flag, value()?)?,
                other => return Err(format!("unknown option {other}")),
            }
        }
        o.target = o.resolve_target(target_url, spawn, mode, bin)?;
        Ok(o)
    }

    /// Where the load goes: a running gateway at a URL (which needs a way to mint tokens),
    /// or one this run spawns.
    fn resolve_target(
        &self,
        target_url: Option<(SocketAddr, String)>,
        spawn: bool,
        mode: Mode,
        bin: Option<PathBuf>,
    ) -> Result<Target, String> {
        Ok(match (target_url, spawn) {
            (Some(_), true) => return Err("--target and --spawn exclude each other".into()),
            (Some((addr, path)), false) => {
                if self.admin_token.is_none() && self.master_key.is_none() {
                    return Err(
                        "--target needs --admin-token or --master-key to mint its tokens".into(),
                    );
                }
                if self.baselines.contains(&"direct") && self.upstream.is_none() {
                    return Err("--baseline direct with --target needs --upstream URL (the server the gateway forwards to)".into());
                }
                if self.admin_token.is_none() && self.mix.contains(Scenario::Revoked) {
                    return Err(
                        "the revoked scenario needs --admin-token (revoking is an admin call)"
                            .into(),
                    );
                }
                Target::Url {
                    addr,
                    path: if path.is_empty() {
                        "/v1/mcp".into()
                    } else {
                        path
                    },
                }
            }
            (None, true) => Target::Spawn { mode, bin },
            (None, false) => return Err("say where the load goes: --spawn or --target URL".into()),
        })
    }
}

/// A server the load is measured against.
struct Endpoint {
    name: &'static str,
    addr: SocketAddr,
    path: String,
    /// Processes whose CPU time is this server's.
    pids: Vec<u32>,
}

/// Everything set up for the measurement; spawned processes end when it is dropped.
struct Setup {
    endpoints: Vec<Endpoint>,
    tokens: Tokens,
    _processes: Vec<Process>,
}

const LOOPBACK: &str = "127.0.0.1";

fn base64_random() -> Result<String, String> {
    intentgate_shared::key_ring::MasterKey::generate()
        .map(|(_, text)| text)
        .map_err(|e| format!("cannot generate a key: {e}"))
}

fn setup(o: &Options) -> Result<Setup, String> {
    let steps = o.loads.len() * (1 + o.baselines.len()) * o.rounds;
    let life =
        (o.warmup + o.duration + Duration::from_secs(2)) * steps as u32 + Duration::from_secs(60);
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut processes = Vec::new();
    let mut endpoints = Vec::new();
    let baseline = |kind: &str, cpus: Option<&CpuSet>| start_baseline(&me, life, kind, cpus);
    let (admin, admin_token, key) = match &o.target {
        Target::Url { addr, path } => {
            endpoints.push(Endpoint {
                name: "gateway",
                addr: *addr,
                path: path.clone(),
                pids: o.server_pid.into_iter().collect(),
            });
            if let Some(up) = o.upstream
                && o.baselines.contains(&"direct")
            {
                endpoints.push(Endpoint {
                    name: "direct",
                    addr: up,
                    path: "/mcp".into(),
                    pids: Vec::new(),
                });
            }
            (
                o.admin.unwrap_or(*addr),
                o.admin_token.clone(),
                o.master_key.clone(),
            )
        }
        Target::Spawn { mode, bin } => {
            let (admin, token) = spawn_gateway(
                o,
                *mode,
                bin.as_deref(),
                &me,
                life,
                &mut processes,
                &mut endpoints,
            )?;
            (admin, Some(token), None)
        }
    };
    if o.baselines.contains(&"hello") {
        let (p, addr) = baseline("hello", o.cpus.gateway.as_ref())?;
        endpoints.push(Endpoint {
            name: "hello",
            addr,
            path: "/".into(),
            pids: vec![p.measured_pid()],
        });
        processes.push(p);
    }
    let gateway = endpoints
        .first()
        .map(|e| (e.addr, e.path.clone()))
        .ok_or("no gateway")?;
    let tokens = mint(o, admin, admin_token.as_deref(), key.as_deref())?;
    check_answers(o, gateway, &tokens)?;
    Ok(Setup {
        endpoints,
        tokens,
        _processes: processes,
    })
}

/// Starts a baseline server (`hello`, or the `upstream` stub) from this binary.
fn start_baseline(
    me: &std::path::Path,
    life: Duration,
    kind: &str,
    cpus: Option<&CpuSet>,
) -> Result<(Process, SocketAddr), String> {
    let addr = spawn::free_port()?;
    let mut args = vec![
        "--addr".to_owned(),
        addr.to_string(),
        "--duration-s".into(),
        life.as_secs().to_string(),
    ];
    if let Some(c) = cpus {
        args.extend(["--cpus".into(), c.to_list()]);
    }
    let mut p = spawn::start(
        kind,
        me,
        &[vec![kind.to_owned()], args].concat(),
        &[],
        None,
        life + Duration::from_secs(5),
    )?;
    p.wait_ready(addr, None)?;
    Ok((p, addr))
}

/// Spawns the gateway (and the upstream stub it forwards to, in proxy mode) with a fresh
/// master key and admin token; returns its admin address and token.
fn spawn_gateway(
    o: &Options,
    mode: Mode,
    bin: Option<&std::path::Path>,
    me: &std::path::Path,
    life: Duration,
    processes: &mut Vec<Process>,
    endpoints: &mut Vec<Endpoint>,
) -> Result<(SocketAddr, String), String> {
    let bin = spawn::gateway_binary(bin)?;
    let mut stub = None;
    if mode == Mode::Proxy || o.baselines.contains(&"direct") {
        let (p, addr) = start_baseline(me, life, "upstream", o.cpus.upstream.as_ref())?;
        stub = Some((p.measured_pid(), addr));
        processes.push(p);
    }
    let (data, admin) = (spawn::free_port()?, spawn::free_port()?);
    let (key, token) = (base64_random()?, base64_random()?);
    let policy =
        std::env::temp_dir().join(format!("intentgate-loadtest-{}.rego", std::process::id()));
    std::fs::write(&policy, scenario::POLICY)
        .map_err(|e| format!("cannot write {policy:?}: {e}"))?;
    let threads = o.cpus.gateway.as_ref().map_or(1, CpuSet::len);
    let mut env = vec![
        ("INTENTGATE_ADDR", data.to_string()),
        ("INTENTGATE_ADMIN_ADDR", admin.to_string()),
        ("INTENTGATE_MASTER_KEY", key.clone()),
        ("INTENTGATE_ADMIN_TOKEN", token.clone()),
        ("INTENTGATE_POLICY_FILE", policy.display().to_string()),
        ("INTENTGATE_DATAPLANE_THREADS", threads.to_string()),
        ("INTENTGATE_AUDIT_TARGET", "none".into()),
        ("INTENTGATE_APPROVALS_BACKEND", "off".into()),
        ("LOG_LEVEL", "warn".into()),
    ];
    if let (Mode::Proxy, Some((_, up))) = (mode, stub) {
        env.push(("INTENTGATE_UPSTREAM_URL", format!("http://{up}/mcp")));
    }
    let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let mut gw = spawn::start(
        "gateway",
        &bin,
        &["serve".into()],
        &env,
        o.cpus.gateway.as_ref(),
        life,
    )?;
    let ready = gw.wait_ready(data, Some("/healthz"));
    let _ = std::fs::remove_file(&policy);
    ready?;
    let mut pids = vec![gw.measured_pid()];
    if let (Mode::Proxy, Some((pid, _))) = (mode, stub) {
        pids.push(pid);
    }
    endpoints.push(Endpoint {
        name: "gateway",
        addr: data,
        path: "/v1/mcp".into(),
        pids,
    });
    if let (true, Some((pid, addr))) = (o.baselines.contains(&"direct"), stub) {
        endpoints.push(Endpoint {
            name: "direct",
            addr,
            path: "/mcp".into(),
            pids: vec![pid],
        });
    }
    processes.push(gw);
    Ok((admin, token))
}

/// Mints the scenarios' tokens through the admin API, or from the master key.
fn mint(
    o: &Options,
    admin: SocketAddr,
    admin_token: Option<&str>,
    key: Option<&str>,
) -> Result<Tokens, String> {
    let tools: Vec<&str> = scenario::TOOLS.to_vec();
    let minted = |subject: String, max_calls: i64| -> Result<(String, String), String> {
        match (admin_token, key) {
            (Some(t), _) => {
                let body = json!({"subject": subject, "tools": tools, "ttl_seconds": 7200, "max_calls": max_calls});
                let (status, v) = Conn::open(admin)
                    .and_then(|mut c| c.post("/v1/admin/mint", t, &body.to_string()))
                    .map_err(|e| format!("mint through the admin API at {admin}: {e}"))?;
                match (v["token"].as_str(), v["jti"].as_str()) {
                    (Some(token), Some(jti)) if status == 200 => {
                        Ok((token.to_owned(), jti.to_owned()))
                    }
                    _ => Err(format!(
                        "mint through the admin API at {admin} answered {status}: {v}"
                    )),
                }
            }
            (None, Some(k)) => mint_locally(k, &subject, max_calls),
            (None, None) => Err("no way to mint tokens".into()),
        }
    };
    let mut tokens = Tokens::default();
    for i in 0..o.tokens {
        tokens
            .allow
            .push(minted(format!("loadtest-agent-{i}"), 0)?.0);
    }
    tokens.bad = tampered(tokens.allow.first().map_or("", String::as_str));
    if o.mix.contains(Scenario::Budget) {
        tokens.budget = minted("loadtest-budget".into(), 1)?.0;
    }
    if o.mix.contains(Scenario::Revoked) {
        let (token, jti) = minted("loadtest-revoked".into(), 0)?;
        let t = admin_token.ok_or("the revoked scenario needs --admin-token")?;
        let body = json!({"jti": jti, "reason": "load test"}).to_string();
        let (status, v) = Conn::open(admin)
            .and_then(|mut c| c.post("/v1/admin/revoke", t, &body))
            .map_err(|e| format!("revoke through the admin API at {admin}: {e}"))?;
        if status != 200 {
            return Err(format!("revoke answered {status}: {v}"));
        }
        tokens.revoked = token;
    }
    Ok(tokens)
}

fn mint_locally(key: &str, subject: &str, max_calls: i64) -> Result<(String, String), String> {
    use intentgate_shared::key_ring::MasterKey;
    use intentgate_shared::timestamp::Timestamp;
    use intentgate_shared::token::{Caveat, MintRequest, Token};
    let key = MasterKey::parse(key).map_err(|e| format!("--master-key: {e}"))?;
    let now = Timestamp::now().unix_seconds();
    let mut caveats = vec![
        Caveat::agent_lock(subject),
        Caveat::exp(now + 7200),
        Caveat::tool_allow(scenario::TOOLS.iter().copied()),
    ];
    if max_calls > 0 {
        caveats.push(Caveat::max_calls(max_calls));
    }
    let token = Token::mint(
        &key,
        MintRequest {
            subject: subject.into(),
            issuer: "intentgate-loadtest".into(),
            caveats,
            ..MintRequest::default()
        },
        now,
    )
    .map_err(|e| format!("cannot mint a token: {e}"))?;
    Ok((token.encode(), String::new()))
}

/// The token with one character of its signature changed: well-formed, not verifiable.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if let Some(b) = bytes.len().checked_sub(6).and_then(|i| bytes.get_mut(i)) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// Sends every scenario once and refuses to measure a gateway that answers any wrongly (a
/// load test of wrong answers measures nothing). Spends the budget token first.
fn check_answers(
    o: &Options,
    (addr, path): (SocketAddr, String),
    tokens: &Tokens,
) -> Result<(), String> {
    let mut conn =
        Conn::open(addr).map_err(|e| format!("cannot connect to the gateway at {addr}: {e}"))?;
    let mut ask = |scenario: Scenario| -> Result<(Outcome, String), String> {
        let mix = Mix(vec![(scenario, 1)]);
        let deck = scenario::deck(&mix, tokens, LOOPBACK, &path, 1);
        let request = deck.first().ok_or("empty deck")?;
        let (status, body) = conn
            .raw(&request.bytes)
            .map_err(|e| format!("the gateway at {addr} did not answer: {e}"))?;
        Ok((
            classify(status, &body),
            String::from_utf8_lossy(&body).into_owned(),
        ))
    };
    if o.mix.contains(Scenario::Budget) {
        let (outcome, body) = ask(Scenario::Budget)?;
        if outcome != Outcome::Result {
            return Err(format!(
                "the budget token's one allowed call was refused ({outcome}): {body}"
            ));
        }
    }
    for (scenario, _) in &o.mix.0 {
        let (outcome, body) = ask(*scenario)?;
        if outcome != scenario.expected() {
            return Err(format!(
                "the gateway answers the {} scenario with {outcome}, not {}: {body}",
                scenario.name(),
                scenario.expected()
            ));
        }
    }
    Ok(())
}

fn cpu_of(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu::process_time(*p)).sum()
}

/// Runs the load test and prints its report.
pub fn run(o: &Options) -> Result<(), String> {
    let setup = setup(o)?;
    let threads = o
        .threads
        .unwrap_or_else(|| o.cpus.client.as_ref().map_or(1, CpuSet::len));
    let mut runs = Vec::new();
    for round in 0..o.rounds {
        for &load in &o.loads {
            for e in &setup.endpoints {
                let deck = scenario::deck(&o.mix, &setup.tokens, LOOPBACK, &e.path, 1000);
                let job = Job {
                    addr: e.addr,
                    deck: Arc::new(deck),
                    connections: o.connections,
                    threads,
                    cpus: o.cpus.client.clone(),
                    load,
                    warmup: o.warmup,
                    duration: o.duration,
                    timeout: o.timeout,
                };
                let (client0, server0) = (cpu::own_time(), cpu_of(&e.pids));
                let tally = engine::run(&job)?;
                let (client1, server1) = (cpu::own_time(), cpu_of(&e.pids));
                let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
                runs.push(RunReport {
                    target: e.name,
                    load,
                    round,
                    tally,
                    checked: e.name == "gateway",
                    client_cpu: diff(client0, client1),
                    server_cpu: diff(server0, server1),
                });
            }
        }
    }
    let (to_hello, hello_each) = report::ratios(&runs, "hello");
    let (to_direct, direct_each) = report::ratios(&runs, "direct");
    let wrong: usize = runs.iter().map(|r| r.unexpected().len()).sum();
    if o.json {
        let doc = json!({
            "ratio_to_hello": to_hello,
            "ratio_to_direct": to_direct,
            "ratios_to_hello": hello_each,
            "ratios_to_direct": direct_each,
            "config": {
                "mix": o.mix.0.iter().map(|(s, w)| (s.name().to_owned(), json!(w))).collect::<serde_json::Map<_, _>>(),
                "connections": o.connections,
                "client_threads": threads,
                "duration_s": o.duration.as_secs_f64(),
                "warmup_s": o.warmup.as_secs_f64(),
                "cpus": {
                    "client": o.cpus.client.as_ref().map(CpuSet::to_list),
                    "gateway": o.cpus.gateway.as_ref().map(CpuSet::to_list),
                    "upstream": o.cpus.upstream.as_ref().map(CpuSet::to_list),
                },
                "mode": match &o.target { Target::Spawn { mode: Mode::Decision, .. } => "decision", _ => "proxy" },
            },
            "runs": runs.iter().map(RunReport::to_json).collect::<Vec<Value>>(),
        });
        println!("{doc:#}");
    } else {
        report::print_table(
            &runs,
            &format!(
                "intentgate-loadtest: {} connection(s) on {threads} client thread(s), {:?} warm-up + {:?} per run, mix {}",
                o.connections,
                o.warmup,
                o.duration,
                o.mix
                    .0
                    .iter()
                    .map(|(s, w)| format!("{}={w}", s.name()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        let show = |name: &str, r: Option<f64>| {
            if let Some(r) = r {
                println!(
                    "ratio_to_{name}: {r:.2} (gateway req/s ÷ {name} req/s, same requests and cores)"
                );
            }
        };
        show("hello", to_hello);
        show("direct", to_direct);
    }
    if wrong > 0 {
        return Err(format!(
            "the gateway gave {wrong} kind(s) of wrong answer (see above)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
