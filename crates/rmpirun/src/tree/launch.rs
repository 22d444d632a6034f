//! rmpirun's side of a launch tree: the relays at the top of the tree, and one
//! [`Link`] per host as the job expects, whose commands go down the tree and whose events come up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::sync::mpsc;

use super::child::{run_child, Child, Prepare};
use super::shape::{arrange, LaunchTree, Node};
use super::wire::{Branch, Down, Host, HostEvent};
use crate::link::{spawn_link, EventSender, Link, LinkEvent, LinkSpec};
use crate::output::progress;
use crate::protocol::Command;

/// Starts a link for every spec: local hosts and, below the tree's threshold, remote hosts
/// directly (the star); otherwise the remote hosts through a tree of relays.
pub fn spawn_links(
    specs: Vec<LinkSpec>,
    tree: LaunchTree,
    events: EventSender,
) -> HashMap<usize, Link> {
    let (remote, local): (Vec<LinkSpec>, Vec<LinkSpec>) =
        specs.into_iter().partition(|s| s.remote.is_some());
    let mut links = HashMap::new();
    for spec in local {
        links.insert(spec.index, spawn_link(spec, events.clone()));
    }
    let Some(fanout) = tree.fanout(remote.len()) else {
        for spec in remote {
            links.insert(spec.index, spawn_link(spec, events.clone()));
        }
        return links;
    };
    let verbose = remote.first().is_some_and(|s| s.verbose);
    let roots = arrange(remote, fanout);
    if verbose {
        let depth = roots.iter().map(Node::depth).max().unwrap_or(0);
        progress(&format!("launch tree: fan-out {fanout}, {depth} level(s) of relays"));
    }
    for root in roots {
        spawn_root(root, &events, &mut links);
    }
    links
}

/// One relay at the top of the tree, with its branch.
fn spawn_root(root: Node<LinkSpec>, events: &EventSender, links: &mut HashMap<usize, Link>) {
    let Some((ssh, bin)) = root.item.remote.clone() else { return };
    let verbose = root.item.verbose;
    let port = root.item.rendezvous_port;
    let root_route = root.item.route;
    let mut routes = HashMap::new();
    let branch = branch_of(root, &mut routes);
    let (down_tx, down_rx) = mpsc::unbounded_channel::<Down>();
    let (news_tx, mut news_rx) = mpsc::unbounded_channel::<(u32, HostEvent)>();
    let to_job = events.clone();
    tokio::spawn(async move {
        while let Some((host, event)) = news_rx.recv().await {
            let ev = match event {
                HostEvent::Up => LinkEvent::Up,
                HostEvent::Agent(e) => LinkEvent::Agent(e),
                HostEvent::Stderr(line) => LinkEvent::Stderr(line),
                HostEvent::Down { reason } => LinkEvent::Down { reason },
            };
            let _ = to_job.send((host as usize, ev));
        }
    });
    let prepare: Prepare = Box::new(move |branch: &mut Branch, ssh_client: Option<String>| {
        // The root's address for this machine stands in for hosts whose name does not resolve
        // here (an ssh alias, say), as a flat link's hello does for its own host.
        let seen = ssh_client.and_then(|c| c.parse::<IpAddr>().ok());
        let fallback = root_route.or(seen);
        set_rendezvous(branch, port, &routes, fallback)
    });
    let hosts = branch.indices();
    let root_index = branch.index as usize;
    let child = Child { branch, ssh, bin, verbose };
    let task = tokio::spawn(run_child(child, down_rx, news_tx, prepare));
    let mut task = Some(task);
    for h in hosts {
        let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
        let down = down_tx.clone();
        let root = h as usize == root_index;
        let relay = tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                let frame = match cmd {
                    Command::Kill => Down::Kill,
                    c @ (Command::Stdin(_) | Command::StdinEof) => Down::To { host: h, command: c },
                    // rmpirun sends every host the same placement; the branch's root host
                    // sends it down once, and each relay passes one copy to each child.
                    c @ Command::Directory(_) if root => Down::ToBranch { command: c },
                    Command::Directory(_) => continue,
                    // Each hop pings its own relay; the job is sent with the plan.
                    Command::Ping | Command::Start(_) => continue,
                };
                if down.send(frame).is_err() {
                    return;
                }
            }
        });
        // The root host's link owns the session: aborting it kills the ssh client, and the
        // whole branch ends.
        let task = if h as usize == root_index { task.take() } else { None };
        links.insert(h as usize, Link { commands: tx, task: task.unwrap_or(relay) });
    }
}

/// The branch of a node, recording each host's route.
fn branch_of(node: Node<LinkSpec>, routes: &mut HashMap<u32, Option<IpAddr>>) -> Branch {
    let spec = node.item;
    let index = spec.index as u32;
    routes.insert(index, spec.route);
    Branch {
        index,
        host: Host::of(&spec.host),
        job: spec.job,
        children: node.children.into_iter().map(|c| branch_of(c, routes)).collect(),
    }
}

fn set_rendezvous(
    branch: &mut Branch,
    port: u16,
    routes: &HashMap<u32, Option<IpAddr>>,
    fallback: Option<IpAddr>,
) -> Result<(), String> {
    let Some(route) = routes.get(&branch.index).copied().flatten().or(fallback) else {
        return Err("cannot find an address of this machine that the host can reach".into());
    };
    branch.job.env.push(rmpi_transport::env::rendezvous_var(SocketAddr::new(route, port)));
    for c in &mut branch.children {
        set_rendezvous(c, port, routes, fallback)?;
    }
    Ok(())
}
