//! Command-line values shared by the subcommands.

use std::net::SocketAddr;
use std::str::FromStr;

/// A loopback socket address (the load tester never targets anything else).
pub fn loopback(flag: &str, value: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value
        .parse()
        .map_err(|_| format!("{flag}: not an address: {value}"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!("{flag} must be a loopback address"))
    }
}

/// A positive integer.
pub fn positive<T: FromStr + PartialOrd + Default>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse::<T>()
        .ok()
        .filter(|n| *n > T::default())
        .ok_or_else(|| format!("{flag}: a positive integer"))
}

/// Command-line words for option tests.
#[cfg(test)]
pub fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}
