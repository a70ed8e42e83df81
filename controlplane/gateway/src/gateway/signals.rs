//! SIGTERM and Ctrl-C, listened for from before the listeners open: a signal that arrives
//! right after startup is a shutdown, not a kill.

use anyhow::{Context as _, Result};

pub(super) struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start signal runtime")?;
        let _in_runtime = rt.enter();
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot listen for Ctrl-C")?;
        drop(_in_runtime);
        Ok(Self { rt, term, int })
    }

    /// Blocks until the first of them.
    pub(super) fn wait(mut self) {
        self.rt.block_on(async {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        });
    }
}
