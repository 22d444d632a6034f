//! End-to-end tests against the moto EC2 emulator in server mode (one server per test).

mod common;

use std::time::Duration;

use aws_credential_types::Credentials;
use common::{cli, run, texts, Moto, Watched};
use rmpi_ec2::hostfile::{AddressKind, Format, Options, Slots};
use rmpi_ec2::query::Client;
use rmpi_ec2::select::{self, TagSelector};
use serde_json::{json, Value};

const SECRET: &str = "moto-secret-Zq8vX2";

/// Two tagged clusters of several instance types, some stopped or terminated, each instance in
/// its own reservation so that page size 5 needs several pages. Returns what boto3 sees.
fn seed_two_clusters(moto: &Moto) -> Vec<Value> {
    let demo = |ty: &str, ip: &str, extra: Value| {
        let mut tags = json!({"Cluster": "demo"});
        for (k, v) in extra.as_object().unwrap() {
            tags[k] = v.clone();
        }
        json!({"type": ty, "ip": ip, "tags": tags})
    };
    let mut instances = vec![
        demo("c5.2xlarge", "172.31.0.11", json!({"rmpi-rank": "1"})),
        demo("t2.micro", "172.31.0.12", json!({"rmpi-rank": "0"})),
        demo("m5.large", "172.31.0.13", json!({"rmpi-rank": "10"})),
        demo("m5.xlarge", "172.31.0.14", json!({"rmpi-rank": "2"})),
        demo("m5.large", "172.31.0.17", json!({"rmpi-rank": "3", "Role": "worker"})),
        demo("t2.micro", "172.31.0.15", json!({"Role": "worker"})),
    ];
    // Launched over a second later than 172.31.0.15: ordered after it by launch time.
    let mut late = demo("c5.2xlarge", "172.31.0.16", json!({}));
    late["pause"] = json!(1.1);
    instances.push(late);
    let mut stopped = demo("t2.micro", "172.31.0.18", json!({"rmpi-rank": "4"}));
    stopped["state"] = json!("stopped");
    let mut terminated = demo("t2.micro", "172.31.0.19", json!({"Role": "worker"}));
    terminated["state"] = json!("terminated");
    instances.extend([stopped, terminated]);
    for (ip, rank, state) in [
        ("172.31.1.11", "2", "running"),
        ("172.31.1.12", "1", "running"),
        ("172.31.1.13", "0", "stopped"),
    ] {
        instances.push(json!({"type": "m5.large", "ip": ip, "state": state,
                              "tags": {"Cluster": "other", "rmpi-rank": rank}}));
    }
    let seeded = moto.seed(&json!({"region": "us-east-1", "instances": instances}));
    assert_eq!(seeded[7]["state"], "stopped");
    assert_eq!(seeded[8]["state"], "terminated");
    seeded
}

/// The CLI with credentials and region in the environment and moto as endpoint.
fn moto_cli(home: &std::path::Path, moto: &Moto) -> std::process::Command {
    let mut cmd = cli(home);
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDMOTO")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint);
    cmd
}

/// Runs the CLI with `args`, expects success, returns stdout.
fn hostfile(home: &std::path::Path, moto: &Moto, args: &[&str]) -> String {
    let out = run(moto_cli(home, moto).arg("hostfile").args(args));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "rmpi-ec2 {args:?} failed: {stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "secret leaked");
    stdout
}

#[test]
fn hostfiles_of_two_tagged_clusters() {
    let moto = Moto::start();
    let seeded = seed_two_clusters(&moto);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    // Default: private IPs, vCPUs per type, ordered by rmpi-rank then launch time; stopped and
    // terminated instances and the other cluster left out; 7 instances over pages of 5.
    assert_eq!(
        hostfile(home, &moto, &["--tag", "Cluster=demo", "--page-size", "5"]),
        "172.31.0.12 slots=1\n\
         172.31.0.11 slots=8\n\
         172.31.0.14 slots=4\n\
         172.31.0.17 slots=2\n\
         172.31.0.13 slots=2\n\
         172.31.0.15 slots=1\n\
         172.31.0.16 slots=8\n"
    );
    // Physical cores, SSH user and port, tag presence.
    assert_eq!(
        hostfile(
            home,
            &moto,
            &[
                "--tag",
                "Cluster=demo",
                "--tag",
                "Role",
                "--slots",
                "cores",
                "--user",
                "ec2-user",
                "--ssh-port",
                "2222"
            ],
        ),
        "ec2-user@172.31.0.17 slots=1 port=2222\nec2-user@172.31.0.15 slots=1 port=2222\n"
    );
    // Open MPI and MPICH formats, fixed slots, the endpoint given by flag instead of env.
    assert_eq!(
        hostfile(
            home,
            &moto,
            &[
                "--tag",
                "Cluster=other",
                "--format",
                "openmpi",
                "--slots",
                "6",
                "--endpoint-url",
                &moto.endpoint
            ]
        ),
        "172.31.1.12 slots=6\n172.31.1.11 slots=6\n"
    );
    assert_eq!(
        hostfile(home, &moto, &["--tag", "Cluster=other", "--format", "mpich"]),
        "172.31.1.12:2\n172.31.1.11:2\n"
    );
    // Public IPs and DNS names, as moto assigned them (read back through boto3).
    let expected: String = [1usize, 0, 3, 4, 2, 5, 6]
        .iter()
        .map(|&i| format!("{} slots=1\n", seeded[i]["public_ip"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hostfile(home, &moto, &["--tag", "Cluster=demo", "--address", "public-ip", "--slots", "1"]),
        expected
    );
    let expected: String = [10usize, 9]
        .iter()
        .map(|&i| format!("{} slots=2\n", seeded[i]["private_dns"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hostfile(home, &moto, &["--tag", "Cluster=other", "--address", "private-dns"]),
        expected
    );

    // Zero matches: a clear error and a non-zero exit.
    let out = run(moto_cli(home, &moto).args(["hostfile", "--tag", "Cluster=nope"]));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert!(
        stderr
            .ends_with("rmpi-ec2: no running EC2 instances in us-east-1 match tags Cluster=nope\n"),
        "{stderr}"
    );

    check_library(&moto, &seeded);

    // After a reset the cluster is gone.
    moto.reset();
    let out = run(moto_cli(home, &moto).args(["hostfile", "--tag", "Cluster=demo"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("match tags Cluster=demo"));
}

/// The library API on the same data: pagination, filtering, DescribeInstanceTypes.
fn check_library(moto: &Moto, seeded: &[Value]) {
    let client = Client::new(
        &moto.endpoint,
        "us-east-1",
        Credentials::new("AKIDMOTO", SECRET, None, None, "test"),
    )
    .unwrap();
    // Every instance of the account, in state order as asked: 12 reservations over pages of 5
    // (moto counts reservations), so three pages must be read.
    let all = client
        .describe_instances(&select::filters(&[], &["running", "stopped", "terminated"]), Some(5))
        .unwrap();
    let mut ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    let mut expected: Vec<&str> = seeded.iter().map(|s| s["id"].as_str().unwrap()).collect();
    expected.sort();
    assert_eq!(ids, expected);

    let selectors: Vec<TagSelector> = vec!["Cluster=demo".parse().unwrap()];
    let running = rmpi_ec2::running_instances(&client, &selectors, "rmpi-rank", Some(5)).unwrap();
    assert_eq!(running.len(), 7);
    assert!(running.iter().all(|i| i.state == "running" && i.tag("Cluster") == Some("demo")));

    let types = client
        .describe_instance_types(&[
            "c5.2xlarge".to_string(),
            "m5.xlarge".to_string(),
            "t2.micro".to_string(),
        ])
        .unwrap();
    assert_eq!(types["c5.2xlarge"].vcpus, 8);
    assert_eq!(types["c5.2xlarge"].cores, 4);
    assert_eq!((types["m5.xlarge"].vcpus, types["m5.xlarge"].cores), (4, 2));
    assert_eq!((types["t2.micro"].vcpus, types["t2.micro"].cores), (1, 1));

    let options = Options {
        format: Format::Rmpi,
        address: AddressKind::PrivateIp,
        slots: Slots::Vcpus,
        user: None,
        port: None,
    };
    let text = rmpi_ec2::hostfile(&client, &running, &options).unwrap();
    assert_eq!(text.lines().next(), Some("172.31.0.12 slots=1"));
    assert_eq!(text.lines().count(), 7);
}

#[test]
fn wait_for_growth_ssh_and_deadline() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let node = |ip: &str, rank: &str| json!({"type": "t2.micro", "ip": ip, "tags": {"Cluster": "grow", "rmpi-rank": rank}});
    moto.seed(&json!({"instances": [node("172.31.2.1", "0"), node("172.31.2.2", "1")]}));

    // Not enough instances: times out, saying how many are missing.
    let started = std::time::Instant::now();
    let out = run(moto_cli(home, &moto).args([
        "hostfile",
        "--tag",
        "Cluster=grow",
        "--wait",
        "4",
        "--timeout",
        "3",
    ]));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("waiting for 4 instances: 2 of 4 ready; 2 not listed by EC2 yet"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // The third instance arrives while waiting: the wait ends with all three.
    let cli = Watched::spawn(moto_cli(home, &moto).args([
        "hostfile",
        "--tag",
        "Cluster=grow",
        "--wait",
        "3",
        "--timeout",
        "60",
    ]));
    cli.wait_for("2 of 3 ready; 1 not listed by EC2 yet", Duration::from_secs(30));
    moto.seed(&json!({"instances": [node("172.31.2.3", "2")]}));
    let (status, stdout, stderr) = cli.finish(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "172.31.2.1 slots=1\n172.31.2.2 slots=1\n172.31.2.3 slots=1\n");
    assert!(stderr.contains("3 instances ready after"), "{stderr}");

    check_wait_for_ssh(&moto, home);
}

/// `--ssh-check` on instances whose private IPs are loopback addresses, so that their "SSH
/// port" is a listener of this test: 127.0.0.1 answers at once, 127.0.0.2 only after a while.
fn check_wait_for_ssh(moto: &Moto, home: &std::path::Path) {
    let node = |ip: &str, rank: &str| json!({"type": "t2.micro", "ip": ip, "tags": {"Cluster": "ssh", "rmpi-rank": rank}});
    moto.seed(&json!({"instances": [node("127.0.0.1", "0"), node("127.0.0.2", "1")]}));
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let banner = |listener: std::net::TcpListener| {
        std::thread::spawn(move || {
            for stream in listener.incoming().take(50) {
                let Ok(mut s) = stream else { continue };
                let _ = std::io::Write::write_all(&mut s, b"SSH-2.0-rmpi-test\r\n");
            }
        })
    };
    banner(first);
    let cli = Watched::spawn(
        moto_cli(home, moto)
            .args([
                "hostfile",
                "--tag",
                "Cluster=ssh",
                "--wait",
                "2",
                "--timeout",
                "60",
                "--ssh-check",
            ])
            .args(["--ssh-port", &port.to_string()]),
    );
    cli.wait_for(&format!("SSH port {port} not answering"), Duration::from_secs(30));
    let second = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    banner(second);
    let (status, stdout, stderr) = cli.finish(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, format!("127.0.0.1 slots=1 port={port}\n127.0.0.2 slots=1 port={port}\n"));
    assert!(
        stderr.contains("1 of 2 ready; i-")
            && stderr.contains(&format!("SSH port {port} not answering")),
        "{stderr}"
    );
}
