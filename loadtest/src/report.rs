//! The results of a load run: a human table and the `--json` document.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::engine::{Load, Tally};
use crate::scenario::Scenario;

/// One measured run against one target.
pub struct RunReport {
    pub target: &'static str,
    pub load: Load,
    pub round: usize,
    pub tally: Tally,
    /// Whether answers are held to each scenario's expected outcome (the gateway's are;
    /// a baseline answers every request alike).
    pub checked: bool,
    pub client_cpu: Option<Duration>,
    pub server_cpu: Option<Duration>,
}

impl RunReport {
    pub fn requests_per_s(&self) -> f64 {
        self.tally.answers as f64 / self.tally.window.as_secs_f64().max(1e-9)
    }

    /// Answers whose outcome is not the one their scenario expects.
    pub fn unexpected(&self) -> Vec<(Scenario, String)> {
        if !self.checked {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (s, t) in &self.tally.scenarios {
            for (outcome, n) in &t.outcomes {
                if *outcome != s.expected() {
                    let sample = t.samples.get(outcome).cloned().unwrap_or_default();
                    out.push((
                        *s,
                        format!("{n} × {outcome} (expected {}): {sample}", s.expected()),
                    ));
                }
            }
        }
        out
    }

    /// Whether an open-loop run kept 99% of its intended rate (below that, its latencies
    /// describe an overloaded client or server, not the rate asked for).
    pub fn rate_achieved(&self) -> Option<bool> {
        match self.load {
            Load::Max => None,
            Load::Rate(r) => Some(self.requests_per_s() >= 0.99 * r),
        }
    }

    fn per_request(&self, cpu: Option<Duration>) -> Option<f64> {
        let n = self.tally.all_answers;
        cpu.filter(|_| n > 0)
            .map(|c| c.as_secs_f64() * 1e6 / n as f64)
    }

    pub fn to_json(&self) -> Value {
        let mut outcomes = Map::new();
        for (s, t) in &self.tally.scenarios {
            let counts: Map<String, Value> = t
                .outcomes
                .iter()
                .map(|(o, n)| (o.to_string(), json!(n)))
                .collect();
            outcomes.insert(
                s.name().into(),
                json!({"expected": s.expected().to_string(), "counts": counts}),
            );
        }
        let errors: Map<String, Value> = self
            .tally
            .errors
            .iter()
            .map(|(k, n)| ((*k).to_owned(), json!(n)))
            .collect();
        json!({
            "target": self.target,
            "load": self.load.to_string(),
            "intended_rate": match self.load { Load::Max => Value::Null, Load::Rate(r) => json!(r) },
            "rate_achieved": self.rate_achieved(),
            "round": self.round,
            "requests": self.tally.answers,
            "requests_per_s": round2(self.requests_per_s()),
            "latency_us": percentiles(&self.tally.latency),
            "service_time_us": percentiles(&self.tally.service),
            "client_lateness_us": match self.load { Load::Max => Value::Null, Load::Rate(_) => percentiles(&self.tally.lateness) },
            "unsent": self.tally.unsent,
            "errors": errors,
            "outcomes": outcomes,
            "unexpected": self.unexpected().len(),
            "client_cpu_us_per_request": self.per_request(self.client_cpu).map(round2),
            "server_cpu_us_per_request": self.per_request(self.server_cpu).map(round2),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn us(ns: u64) -> f64 {
    round2(ns as f64 / 1000.0)
}

fn percentiles(h: &hdrhistogram::Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p99_9": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
    })
}

/// gateway requests/s ÷ baseline requests/s, per load step and round, and their median.
pub fn ratios(runs: &[RunReport], baseline: &str) -> (Option<f64>, Vec<f64>) {
    let mut each = Vec::new();
    for g in runs.iter().filter(|r| r.target == "gateway") {
        let b = runs
            .iter()
            .find(|r| r.target == baseline && r.round == g.round && r.load == g.load);
        if let Some(b) = b.filter(|b| b.requests_per_s() > 0.0) {
            each.push(round2(g.requests_per_s() / b.requests_per_s()));
        }
    }
    let mut sorted = each.clone();
    sorted.sort_by(f64::total_cmp);
    (sorted.get(sorted.len() / 2).copied(), each)
}

/// The human table.
pub fn print_table(runs: &[RunReport], header: &str) {
    println!("{header}");
    println!(
        "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7}",
        "target",
        "load",
        "req/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "cli µs/r",
        "srv µs/r",
        "errors",
        "wrong"
    );
    for r in runs {
        let p = |q: f64| us(r.tally.latency.value_at_quantile(q));
        let cpu = |c: Option<f64>| c.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let errors: u64 = r.tally.errors.values().sum();
        println!(
            "{:<8} {:>9} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>8} {:>7} {:>7}",
            r.target,
            r.load.to_string(),
            r.requests_per_s(),
            p(0.5),
            p(0.9),
            p(0.99),
            p(0.999),
            us(r.tally.latency.max()),
            cpu(r.per_request(r.client_cpu)),
            cpu(r.per_request(r.server_cpu)),
            errors,
            r.unexpected().len()
        );
        if r.rate_achieved() == Some(false) {
            println!(
                "         ^ achieved {:.0}/s of {}: below 99%, these latencies describe overload",
                r.requests_per_s(),
                r.load
            );
        }
        if let Load::Rate(_) = r.load
            && !r.tally.lateness.is_empty()
        {
            println!(
                "         client lateness p50 {:.1} µs, p99 {:.1} µs",
                us(r.tally.lateness.value_at_quantile(0.5)),
                us(r.tally.lateness.value_at_quantile(0.99))
            );
        }
        for (k, n) in &r.tally.errors {
            println!("         {n} × {k}");
        }
        for (s, text) in r.unexpected() {
            println!("         wrong answer to {}: {text}", s.name());
        }
    }
}
