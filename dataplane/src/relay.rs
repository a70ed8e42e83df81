//! Relays: what passes through the gateway without being answered by it. `admin` relays
//! `/v1/admin/*` to the control plane's listener; `events` relays an upstream event stream
//! to the agent as it arrives, watching for the response to the request and auditing the
//! call when the stream ends.

pub(crate) mod admin;
pub(crate) mod events;
