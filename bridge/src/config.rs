//! The Zenoh side of a bridge: explicit endpoints, no scouting unless asked for.

use std::time::Duration;

use zenoh::{Config, Session, Wait};

use crate::{Error, Result};

/// How a bridge reaches its peers. Nothing is discovered: the session listens and connects
/// only where it is told, and Zenoh's multicast and gossip scouting stay off unless
/// [`scout`](Self::scout) is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Endpoints to listen on, e.g. `tcp/192.0.2.1:7447`. Empty: listen nowhere.
    pub listen: Vec<String>,
    /// Endpoints to connect to (a peer bridge or a Zenoh router); retried until they answer.
    pub connect: Vec<String>,
    /// Connect as a Zenoh client (to a router) instead of as a peer.
    pub client: bool,
    /// The Zenoh lease: a link that carries nothing (not even keep-alives) for this long is
    /// closed, and the peer's liveliness tokens vanish with it. The bound on noticing a link
    /// that went away silently.
    pub lease: Duration,
    /// Turns Zenoh's multicast scouting (and gossip) on: off by default.
    pub scout: bool,
    /// The first part of every key expression (`shmio/queue` by default).
    pub prefix: String,
    /// A Zenoh configuration file, read first; the options above then override it.
    pub config_file: Option<String>,
    /// Zenoh's low-latency transport (`transport/unicast/lowlatency`, which needs its QoS
    /// off): fewer hops per message, no priorities. Both ends must agree.
    pub low_latency: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            listen: Vec::new(),
            connect: Vec::new(),
            client: false,
            lease: Duration::from_secs(3),
            scout: false,
            prefix: "shmio/queue".into(),
            config_file: None,
            low_latency: false,
        }
    }
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

impl NetOptions {
    /// The Zenoh configuration these options describe.
    pub fn zenoh_config(&self) -> Result<Config> {
        let mut c = match &self.config_file {
            Some(path) => {
                Config::from_file(path).map_err(|e| Error::Config(format!("{path}: {e}")))?
            }
            None => Config::default(),
        };
        let lease_ms = self.lease.as_millis().max(100);
        let scout = self.scout.to_string();
        let settings = [
            (
                "mode",
                if self.client {
                    "\"client\""
                } else {
                    "\"peer\""
                }
                .to_string(),
            ),
            ("listen/endpoints", json_list(&self.listen)),
            ("connect/endpoints", json_list(&self.connect)),
            ("scouting/multicast/enabled", scout.clone()),
            ("scouting/gossip/enabled", scout),
            ("transport/link/tx/lease", lease_ms.to_string()),
            // A lost peer is sought again quickly once it answers.
            (
                "connect/retry",
                "{period_init_ms:200,period_max_ms:1000,period_increase_factor:2}".into(),
            ),
        ];
        let low = [
            ("transport/unicast/lowlatency", "true".to_string()),
            ("transport/unicast/qos/enabled", "false".to_string()),
        ];
        let low = if self.low_latency { &low[..] } else { &[] };
        for (key, value) in settings.iter().chain(low) {
            c.insert_json5(key, value)
                .map_err(|e| Error::Config(format!("zenoh {key}={value}: {e}")))?;
        }
        Ok(c)
    }

    /// Opens the Zenoh session.
    pub fn open(&self) -> Result<Session> {
        zenoh::open(self.zenoh_config()?)
            .wait()
            .map_err(Error::zenoh)
    }

    /// The key expression `PREFIX/NAME/SUFFIX`.
    pub fn key(&self, name: &str, suffix: &str) -> String {
        format!("{}/{name}/{suffix}", self.prefix.trim_end_matches('/'))
    }
}
