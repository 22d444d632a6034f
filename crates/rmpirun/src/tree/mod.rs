//! The launch tree (`--launch-tree F`): rmpirun opens SSH sessions to at most F hosts; the node
//! agent on each of them (a *relay*) starts the agents of its part of the job over SSH in turn,
//! F at a time, and relays control frames down and events up, so that rmpirun still hears every
//! rank's output and exit and every host's fate.
//!
//! * [`shape`]: which hosts each relay starts (the tree itself) and the default fan-out;
//! * [`wire`]: the frames between a parent (rmpirun or a relay) and a relay;
//! * [`session`]: opening the SSH session that runs `rmpirun --relay-agent` on a host;
//! * [`child`]: a parent's side of one relay: boots it, hands it its subtree, relays both ways,
//!   and reports every host below it as lost when it goes;
//! * [`relay`]: `rmpirun --relay-agent`, the relay process itself;
//! * [`launch`]: rmpirun's side: one [`crate::link::Link`] per host, as the job expects.
//!
//! Every relay is also the node agent of its own host: its ranks run under an in-process
//! [`crate::agent::run_agent`]. A relay that loses its parent (end of stdin, or silence for
//! [`crate::protocol::AGENT_WATCHDOG`]) ends its own ranks and its children sessions, whose relays
//! then do the same: the whole subtree goes.

pub mod child;
pub mod launch;
pub mod relay;
pub mod session;
pub mod shape;
pub mod wire;

pub use launch::spawn_links;
pub use shape::LaunchTree;

/// The hidden first argument that turns `rmpirun` into a relay agent.
pub const RELAY_FLAG: &str = "--relay-agent";
