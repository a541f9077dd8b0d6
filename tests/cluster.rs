//! Five real `goliath node` processes gossiping on loopback: they find each other, notice a
//! SIGKILLed member, take it back after a restart with a new generation, and ride out a
//! SIGSTOP shorter than the suspicion timeout without declaring anyone dead. Timers are
//! shortened through `--set`; every wait polls `goliath members --json` up to a generous
//! deadline and asserts outcomes, never durations.

mod common;

use std::time::{Duration, Instant};

use common::LIVENESS;
use common::binary::RunningNode;
use serde_json::Value;

/// Fast timers: 100 ms probes, and a suspicion timeout of 4 to 6 s (20 × max(2, log10 n) ×
/// 100 ms, at most 1.5× that), so a 1.5 s stop stays well inside it.
const FAST: &[&str] = &[
    "--set",
    "gossip.probe_timeout=40ms",
    "--set",
    "gossip.probe_interval=100ms",
    "--set",
    "gossip.gossip_interval=50ms",
    "--set",
    "gossip.suspicion_mult=20",
    "--set",
    "gossip.suspicion_max_mult=1.5",
    "--set",
    "gossip.meta_interval=200ms",
];

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(name: &str, port: u16, seed: Option<u16>) -> RunningNode {
    let gossip = format!("127.0.0.1:{port}");
    let mut args = vec!["--name", name, "--gossip", &gossip];
    let join;
    if let Some(seed) = seed {
        join = format!("127.0.0.1:{seed}");
        args.extend(["--join", join.as_str()]);
    }
    args.extend_from_slice(FAST);
    RunningNode::start(&args)
}

fn members(node: &RunningNode) -> Value {
    node.json(&["members"])
}

fn member<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

/// Waits until `node`'s log holds `text`; `what` says what is missing when it never does.
fn wait_for_log(node: &RunningNode, text: &str, what: &str) {
    common::eventually(|| {
        node.log()
            .contains(text)
            .then_some(())
            .ok_or_else(|| format!("{what}; log:\n{}", node.log()))
    });
}

/// Polls until `check` holds for the membership views of all `observers`.
fn wait_until(observers: &[&RunningNode], what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + LIVENESS;
    loop {
        let views: Vec<Value> = observers.iter().map(|n| members(n)).collect();
        if views.iter().all(&check) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never true: {what}; last views: {views:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events_about(view: &Value, name: &str) -> Vec<Value> {
    view["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["member"] == name)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn five_processes_detect_a_kill_take_back_a_restart_and_ride_out_a_pause() {
    let ports: Vec<u16> = (0..5).map(|_| free_udp_port()).collect();
    let names: Vec<String> = (0..5).map(|i| format!("member-{i}")).collect();
    let mut nodes: Vec<Option<RunningNode>> = Vec::new();
    for i in 0..5 {
        let seed = (i > 0).then_some(ports[0]);
        nodes.push(Some(start(&names[i], ports[i], seed)));
    }
    let all = |nodes: &[Option<RunningNode>]| -> Vec<usize> {
        (0..nodes.len()).filter(|&i| nodes[i].is_some()).collect()
    };

    // All five see five alive.
    {
        let observers: Vec<&RunningNode> = nodes.iter().flatten().collect();
        wait_until(&observers, "every node sees 5 alive", |view| {
            view["counts"]["alive"] == 5
                && names
                    .iter()
                    .all(|n| member(view, n).is_some_and(|m| m["state"] == "alive"))
        });
    }

    // SIGKILL member-2: the others report it dead.
    let killed = 2;
    let old_generation = member(&members(nodes[0].as_ref().expect("node 0")), &names[killed])
        .and_then(|m| m["generation"].as_u64())
        .expect("generation of member-2");
    if let Some(mut node) = nodes[killed].take() {
        node.child.kill().expect("SIGKILL");
        let _ = node.child.wait();
    }
    {
        let observers: Vec<&RunningNode> = all(&nodes)
            .into_iter()
            .filter_map(|i| nodes[i].as_ref())
            .collect();
        wait_until(&observers, "member-2 is dead to the others", |view| {
            member(view, &names[killed]).is_some_and(|m| m["state"] == "dead")
        });
        // Its last phi and load are not shown as current: null in members and in a
        // watch's snapshots alike.
        let view = members(observers[0]);
        let dead = member(&view, &names[killed]).expect("listed");
        assert!(dead["phi"].is_null() && dead["meta"].is_null(), "{view}");
        let mut watch = common::binary::goliath()
            .args(["watch", "--json", "--snapshots", "100ms", "--node"])
            .arg(&observers[0].address)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("watch runs");
        let lines = common::lines_of(watch.stdout.take().expect("stdout"));
        let snapshot = loop {
            let line = lines.recv_timeout(LIVENESS).expect("a snapshot line");
            let value: Value = serde_json::from_str(&line).expect("a JSON line");
            if value.get("snapshot").is_some() {
                break value;
            }
        };
        let _ = watch.kill();
        let _ = watch.wait();
        let dead = member(&snapshot["snapshot"]["cluster"], &names[killed]).expect("listed");
        assert!(
            dead["phi"].is_null() && dead["meta"].is_null(),
            "{snapshot}"
        );
    }

    // Restart it with the same name and port: alive again, with a newer generation.
    nodes[killed] = Some(start(&names[killed], ports[killed], Some(ports[0])));
    {
        let observers: Vec<&RunningNode> = nodes.iter().flatten().collect();
        wait_until(
            &observers,
            "member-2 is back with a new generation",
            |view| {
                view["counts"]["alive"] == 5
                    && member(view, &names[killed]).is_some_and(|m| {
                        m["state"] == "alive"
                            && m["generation"].as_u64().is_some_and(|g| g > old_generation)
                    })
            },
        );
    }

    // SIGSTOP member-3 for 1.5 s (well under its 4 s minimum suspicion), then SIGCONT.
    let paused = 3;
    let pid = nodes[paused].as_ref().expect("node 3").child.id();
    common::signal(pid, "-STOP");
    std::thread::sleep(Duration::from_millis(1500));
    common::signal(pid, "-CONT");
    let others: Vec<usize> = (0..5).filter(|&i| i != paused).collect();
    {
        let observers: Vec<&RunningNode> =
            others.iter().filter_map(|&i| nodes[i].as_ref()).collect();
        wait_until(&observers, "member-3 is alive again", |view| {
            member(view, &names[paused]).is_some_and(|m| m["state"] == "alive")
        });
    }
    // It was suspected by someone, and declared dead by no one.
    let views: Vec<Value> = others
        .iter()
        .filter_map(|&i| nodes[i].as_ref())
        .map(members)
        .collect();
    let events: Vec<Value> = views
        .iter()
        .flat_map(|view| events_about(view, &names[paused]))
        .collect();
    assert!(
        events.iter().any(|e| e["kind"].get("suspected").is_some()),
        "nobody suspected the paused member: {events:#?}"
    );
    assert!(
        !events.iter().any(|e| e["kind"] == "failed"),
        "the paused member was declared dead: {events:#?}"
    );
    let refuted = members(nodes[paused].as_ref().expect("node 3"));
    assert!(
        refuted["incarnation"].as_u64().is_some_and(|i| i >= 1),
        "the paused member refuted its suspicion: {refuted:#?}"
    );
}

#[test]
fn members_says_when_gossip_is_off() {
    let node = RunningNode::start(&[]);
    let output = node.client(&["members"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gossip is off"), "{stderr}");
    assert!(stderr.contains("--gossip"), "{stderr}");
}

#[test]
fn a_node_on_the_address_of_a_dead_member_does_not_answer_for_it() {
    let (a, x) = (free_udp_port(), free_udp_port());
    let first = start("alpha", a, None);
    let mut xray = start("xray", x, Some(a));
    wait_until(&[&first], "alpha sees xray alive", |view| {
        member(view, "xray").is_some_and(|m| m["state"] == "alive")
    });
    xray.child.kill().expect("SIGKILL");
    let _ = xray.child.wait();
    // Another node takes xray's gossip address at once. alpha still probes xray there:
    // zulu must not answer for it, or xray would live on.
    let zulu = start("zulu", x, None);
    wait_until(&[&first], "alpha declares xray dead", |view| {
        member(view, "xray").is_some_and(|m| m["state"] == "dead")
    });
    // zulu may join the cluster (other packets to that address, such as the notice that
    // xray is suspected, introduce alpha, as a healed partition would), but as itself.
    let view = members(&zulu);
    assert!(
        member(&view, "xray").is_none_or(|m| m["state"] != "alive"),
        "{view:#?}"
    );
    assert!(
        view["stats"]["misdirected"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{view:#?}"
    );
    // zulu says what the probes are, once.
    let log = zulu.log();
    assert_eq!(
        log.matches("meant for a member of another name").count(),
        1,
        "{log}"
    );
    assert!(log.contains("gossip probes from alpha"), "{log}");
}

#[test]
fn a_foreign_cluster_is_not_joined() {
    let (a, b) = (free_udp_port(), free_udp_port());
    let first = start("alpha", a, None);
    let gossip = format!("127.0.0.1:{b}");
    let join = format!("127.0.0.1:{a}");
    let mut args = vec![
        "--name",
        "beta",
        "--gossip",
        &gossip,
        "--join",
        &join,
        "--set",
        "node.cluster=other",
    ];
    args.extend_from_slice(FAST);
    let second = RunningNode::start(&args);
    // beta keeps knocking; alpha counts and drops every packet and never lists it.
    let deadline = Instant::now() + LIVENESS;
    loop {
        let view = members(&first);
        assert!(member(&view, "beta").is_none(), "{view:#?}");
        if view["stats"]["foreign"].as_u64().is_some_and(|n| n >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no foreign packet counted: {view:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let view = second.json(&["members", "--set", "node.cluster=other"]);
    assert_eq!(view["counts"]["alive"], 1, "{view:#?}");
    // alpha says why it drops them, once, naming the sender and what to change.
    let log = first.log();
    assert_eq!(log.matches("belong to another cluster").count(), 1, "{log}");
    assert!(log.contains(&format!("from 127.0.0.1:{b}")), "{log}");
    assert!(log.contains("node.cluster = \"goliath\""), "{log}");
}

#[test]
fn demo_forms_a_cluster_and_its_children_die_with_a_killed_parent() {
    // The demo's nodes keep their logs under the data home; this one is removed at the end.
    let data_home = tempfile::tempdir().expect("temp data home");
    let mut demo = common::binary::goliath()
        .env("XDG_DATA_HOME", data_home.path())
        // The first node keeps the name asked for; port 0 becomes a free port it announces.
        .args(["demo", "3", "--name", "demo-main"])
        .args(["--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo starts");
    let receiver = common::lines_of(demo.stderr.take().expect("stderr"));
    let mut children: Vec<u32> = Vec::new();
    let mut listen = None;
    let deadline = Instant::now() + LIVENESS;
    while listen.is_none() {
        let line = receiver
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("demo announces its nodes");
        if let Some(rest) = line.split("(pid ").nth(1) {
            children.push(
                rest.split(',')
                    .next()
                    .and_then(|p| p.trim().parse().ok())
                    .expect("a pid"),
            );
        }
        if let Some(rest) = line.split("in the foreground (listen ").nth(1) {
            listen = rest.split(',').next().map(str::to_string);
        }
    }
    let listen = listen.expect("the first node's address");
    assert!(
        !listen.ends_with(":0"),
        "the announced address is one clients can reach: {listen}"
    );
    assert_eq!(children.len(), 2, "two child nodes");
    let deadline = Instant::now() + LIVENESS;
    loop {
        let output = common::binary::goliath()
            .args(["members", "--json", "--node", &listen])
            .output()
            .expect("client runs");
        let view: Option<Value> = serde_json::from_slice(&output.stdout).ok();
        if view.as_ref().is_some_and(|v| v["counts"]["alive"] == 3) {
            let text = view.map(|v| v.to_string()).unwrap_or_default();
            // The children are named after it, so a second demo with another --name on
            // this machine takes other names and data directories.
            assert!(
                text.contains("\"demo-main\"")
                    && text.contains("\"demo-main-1\"")
                    && text.contains("\"demo-main-2\""),
                "the first node is named as asked, the children after it: {text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo never showed 3 alive: {view:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    demo.kill().expect("SIGKILL the demo");
    let _ = demo.wait();
    let deadline = Instant::now() + LIVENESS;
    while !children.iter().all(|&pid| common::process_gone(pid)) {
        assert!(
            Instant::now() < deadline,
            "children {children:?} outlived their killed parent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two in-process nodes on real UDP sockets; the fault layer cuts them apart and heals them.
#[test]
fn the_fault_layer_partitions_and_heals_real_sockets() {
    use goliath::config::{Config, Float, WorkerCount};
    use goliath::runtime::Node;
    use goliath::runtime::gossip::{Cluster, FaultRules, MemberState};
    use std::sync::Arc;

    let config = |name: &str, join: Option<String>| {
        let mut config = Config::default();
        config.node.name = name.into();
        config.scheduler.workers = WorkerCount::Fixed(1);
        config.arena.slots = 64;
        config.gossip.enabled = true;
        config.gossip.bind = "127.0.0.1:0".into();
        config.gossip.join = join.into_iter().collect();
        config.gossip.probe_interval = Duration::from_millis(100);
        config.gossip.probe_timeout = Duration::from_millis(40);
        config.gossip.gossip_interval = Duration::from_millis(50);
        config.gossip.suspicion_mult = Float(1.0);
        config
    };
    let a = Arc::new(Node::start(config("a", None)).expect("a starts"));
    let a_gossip = Cluster::start(&a).expect("gossip").expect("on");
    let b = Arc::new(
        Node::start(config("b", Some(a_gossip.local_addr().to_string()))).expect("b starts"),
    );
    let b_gossip = Cluster::start(&b).expect("gossip").expect("on");
    let state_of = |cluster: &Cluster, name: &str| {
        cluster
            .snapshot()
            .members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.state)
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + LIVENESS;
        while !check() {
            assert!(Instant::now() < deadline, "never true: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("a and b see each other", &|| {
        state_of(&a_gossip, "b") == Some(MemberState::Alive)
            && state_of(&b_gossip, "a") == Some(MemberState::Alive)
    });
    let cut = |cluster: &Cluster, peer: std::net::SocketAddr| {
        let mut rules = FaultRules::default();
        rules.blocked.insert(peer);
        cluster.set_faults(rules);
    };
    cut(&a_gossip, b_gossip.local_addr());
    cut(&b_gossip, a_gossip.local_addr());
    wait("each declares the other dead", &|| {
        state_of(&a_gossip, "b") == Some(MemberState::Dead)
            && state_of(&b_gossip, "a") == Some(MemberState::Dead)
    });
    a_gossip.set_faults(FaultRules::default());
    b_gossip.set_faults(FaultRules::default());
    wait("the partition heals", &|| {
        state_of(&a_gossip, "b") == Some(MemberState::Alive)
            && state_of(&b_gossip, "a") == Some(MemberState::Alive)
    });
    b_gossip.stop();
    a_gossip.stop();
}

/// A node started before its seed says, within seconds, that nobody answers its join
/// (instead of running alone without a word), shows "joining", and joins once the seed
/// starts.
#[test]
fn a_node_whose_seed_is_not_up_yet_says_so_then_joins_when_it_starts() {
    let seed_port = free_udp_port();
    let early = start("early", free_udp_port(), Some(seed_port));
    wait_for_log(
        &early,
        "no seed has answered this node's join",
        "no warning about the silent seed",
    );
    assert!(
        early.log().contains(&format!("127.0.0.1:{seed_port}")),
        "the warning names the seed; log:\n{}",
        early.log()
    );
    assert_eq!(members(&early)["status"], "joining");
    let seed = start("seed", seed_port, None);
    assert_eq!(
        members(&seed)["status"],
        "active",
        "a node without seeds founds its cluster"
    );
    wait_until(&[&early, &seed], "both see 2 alive", |view| {
        view["counts"]["alive"] == 2 && view["status"] == "active"
    });
    wait_for_log(&early, "a seed answered", "the end of the wait is not told");
    // Fields stand two spaces after the message, as in the console's log pane.
    wait_for_log(
        &early,
        "gossip started  member=early",
        "no start line with its fields two spaces after the message",
    );
    // A value with spaces is quoted, so a script can tell where it ends.
    wait_for_log(
        &early,
        "starting node  config=\"embedded default config, changed by",
        "the config field's value is not quoted",
    );
}

#[test]
fn members_shows_this_node_s_own_figures_of_now() {
    // Its own row carries what `status` shows at once, not what it last gossiped (at most
    // every gossip.meta_interval, 5 s).
    let gossip = format!("127.0.0.1:{}", free_udp_port());
    let node = RunningNode::start(&[
        "--name",
        "solo",
        "--gossip",
        &gossip,
        "--workers",
        "2",
        "--set",
        "gossip.meta_interval=60s",
    ]);
    let before = members(&node);
    let capacity = member(&before, "solo").expect("itself")["meta"]["arena_free"]
        .as_u64()
        .expect("a number");
    let submitted = node.client(&["submit", "sleep 60s x10"]);
    assert!(submitted.status.success(), "{submitted:?}");
    let view = members(&node);
    let me = member(&view, "solo").expect("itself");
    assert_eq!(me["meta"]["arena_free"], capacity - 10, "{view}");
    assert_eq!(
        me["meta"]["load"], 5.0,
        "10 sleeping tasks on 2 workers: {view}"
    );
}

#[test]
fn a_seed_that_is_no_goliath_node_is_named_for_what_it_sends_back() {
    // Two UDP services at the addresses given as seeds: one answers every datagram with
    // text of its own, the other sends each back as it came.
    let garbage = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let serve = |socket: std::net::UdpSocket, answer: Option<&'static [u8]>| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while let Ok((length, from)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(answer.unwrap_or(&buffer[..length]), from);
            }
        })
    };
    let (garbage_port, echo_port) = (
        garbage.local_addr().expect("address").port(),
        echo.local_addr().expect("address").port(),
    );
    serve(garbage, Some(b"HTTP/1.0 400 Bad Request\r\n\r\n"));
    serve(echo, None);
    let answered = start("answered", free_udp_port(), Some(garbage_port));
    wait_for_log(
        &answered,
        &format!("gossip packets from 127.0.0.1:{garbage_port} are not goliath gossip"),
        "no word on the seed that answers with other bytes",
    );
    let echoed = start("echoed", free_udp_port(), Some(echo_port));
    wait_for_log(
        &echoed,
        &format!("gossip packets from 127.0.0.1:{echo_port} are this node's own, sent back"),
        "no word on the seed that sends the join back",
    );
}

#[test]
fn a_node_on_every_interface_advertises_an_address_the_others_reach() {
    // Bound to 0.0.0.0 without gossip.advertise: advertising 0.0.0.0 sent every probe of it
    // back to the prober itself, so it was suspected and refuted without end.
    let (a, b) = (free_udp_port(), free_udp_port());
    let first = start("alpha", a, None);
    let gossip = format!("0.0.0.0:{b}");
    let join = format!("127.0.0.1:{a}");
    let mut args = vec!["--name", "beta", "--gossip", &gossip, "--join", &join];
    args.extend_from_slice(FAST);
    let second = RunningNode::start(&args);
    let reachable = format!("127.0.0.1:{b}");
    wait_until(
        &[&first],
        "alpha lists beta alive at its loopback address",
        |view| {
            member(view, "beta")
                .is_some_and(|m| m["state"] == "alive" && m["gossip_address"] == reachable.as_str())
        },
    );
    let own = members(&second);
    assert_eq!(own["gossip_address"], reachable.as_str(), "{own:#?}");
    // `status` says where the node stands in its cluster, as `members` does in full.
    let status = second.client(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!(
            "cluster   goliath as beta at {reachable}, active: 2 alive"
        )),
        "{text}"
    );
    assert!(
        second.log().contains("advertising 127.0.0.1:"),
        "the choice is logged: {}",
        second.log()
    );
}

#[test]
fn a_demo_whose_config_names_a_data_directory_gives_the_children_their_own() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("goliath.toml");
    let data = home.path().join("first-node");
    std::fs::write(
        &config,
        format!("[node]\ndata_dir = {:?}\n", data.display().to_string()),
    )
    .expect("config written");
    let listen = format!("127.0.0.1:{}", common::binary::free_tcp_port());
    /// Kills the demo also when an assertion fails first.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let demo = common::binary::goliath()
        .env("XDG_DATA_HOME", home.path())
        .arg("--config")
        .arg(&config)
        .args(["demo", "2", "--listen", &listen, "--gossip", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo starts");
    let demo = KillOnDrop(demo);
    // Each look starts a client process: one every 100 ms, not every millisecond, so the
    // looks do not take the cores from the nodes they wait for.
    let deadline = Instant::now() + LIVENESS;
    loop {
        let output = common::binary::goliath()
            .args(["members", "--json", "--node", &listen])
            .output()
            .expect("client runs");
        let view: Option<Value> = serde_json::from_slice(&output.stdout).ok();
        if view.as_ref().is_some_and(|v| v["counts"]["alive"] == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "never 2 alive: {view:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(demo);
    assert!(
        data.join("gossip-generation").exists(),
        "the first node used the configured directory"
    );
}

/// `--join` naming the node's own gossip address (a mistyped port, most likely) founds a
/// cluster of one: the log says so rather than starting alone without a word.
#[test]
fn a_join_list_naming_only_this_node_says_it_founds_a_cluster_of_its_own() {
    let port = free_udp_port();
    let lone = start("lone", port, Some(port));
    wait_for_log(
        &lone,
        "names only this node's own gossip address",
        "no warning about the join list",
    );
    assert!(
        lone.log().contains(&format!("127.0.0.1:{port}")),
        "the warning names the address; log:\n{}",
        lone.log()
    );
    assert_eq!(members(&lone)["status"], "active");
}
