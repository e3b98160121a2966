//! How far a proxy has taken its configuration, per type: what the ADS streams record in the proxy registry and
//! what `status`, `wait` and `/debug/syncz` show.

use std::fmt;

use api_protos::ResourceType;

/// The wire protocol of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Sotw,
    Delta,
}

/// Where a proxy is with one type, in `istioctl proxy-status`'s words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncState {
    /// It ACKed what the latest snapshot holds for it.
    Synced,
    /// It runs an older version, or a response is in flight.
    Stale,
    /// Nothing was sent yet.
    NotSent,
    /// It rejected what it would be sent; it runs what it last ACKed.
    Nacked,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "SYNCED",
            SyncState::Stale => "STALE",
            SyncState::NotSent => "NOT SENT",
            SyncState::Nacked => "NACKED",
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for SyncState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Sync state of one type, as `status` and `/debug/syncz` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeSync {
    pub kind: ResourceType,
    pub requested: bool,
    /// Version of the last response sent, if any.
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    /// Nonce of the response awaiting an ACK.
    pub pending_nonce: Option<String>,
    /// Version of the complete set the current snapshot holds for this proxy's subscription.
    pub latest_version: String,
    /// Set while the proxy rejects what we would send.
    pub nack: Option<Nack>,
    /// The most recent NACK on this stream, even if resolved since.
    pub last_nack: Option<Nack>,
    pub resource_count: usize,
    /// Responses sent for this type on this stream, and the resources they carried.
    pub responses_sent: u64,
    pub resources_sent: u64,
}

impl TypeSync {
    /// Where the proxy is with this type, as `istioctl proxy-status` says it.
    pub fn status(&self) -> SyncState {
        if self.nack.is_some() {
            SyncState::Nacked
        } else if self.sent_version.is_none() {
            SyncState::NotSent
        } else if self.pending_nonce.is_none() && self.acked_version.as_deref() == Some(self.latest_version.as_str()) {
            SyncState::Synced
        } else {
            SyncState::Stale
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub nonce: String,
    pub rejected_version: String,
    pub message: String,
}
