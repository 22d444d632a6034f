//! `rmpi-ec2 up`, `down` and `list` end to end against the moto EC2 emulator (one server per
//! test), checked through an independent client (boto3). moto does not implement placement
//! groups, so these runs pass `--no-placement-group`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli, forward, run, texts, with_param, Moto, Reply, SeenRequest, Stub};
use serde_json::{json, Value};

const SECRET: &str = "cluster-secret-4Rt9";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The CLI with credentials and region in the environment and `endpoint` as EC2.
fn ec2(home: &Path, endpoint: &str) -> Command {
    let mut cmd = cli(home);
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDCLUSTER")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .current_dir(home);
    cmd
}

/// Runs the CLI; returns (exit code, stdout, stderr).
fn rmpi_ec2(home: &Path, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let out = run(ec2(home, endpoint).args(args));
    let (stdout, stderr) = texts(&out);
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "secret leaked");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// `up` for a t3.micro cluster of `count` with the given key, SSH from 203.0.113.7/32.
fn up_args<'a>(cluster: &'a str, count: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "up",
        "--cluster",
        cluster,
        "--count",
        count,
        "--type",
        "t3.micro",
        "--image",
        "ami-12345678",
        "--key-file",
        key,
        "--ssh-cidr",
        "203.0.113.7/32",
        "--no-placement-group",
    ]
}

/// Instances (any state) as boto3 sees them: `(id, state, type, key name, tags)`.
fn instances(moto: &Moto) -> Vec<Value> {
    let r = moto.boto1("describe_instances", json!({}));
    r["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|res| res["Instances"].as_array().unwrap().clone())
        .collect()
}

fn tag<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["Tags"].as_array()?.iter().find(|t| t["Key"] == key).and_then(|t| t["Value"].as_str())
}

/// The live (not terminated) instances of `cluster`.
fn live(moto: &Moto, cluster: &str) -> Vec<Value> {
    instances(moto)
        .into_iter()
        .filter(|i| tag(i, "Cluster") == Some(cluster) && i["State"]["Name"] != "terminated")
        .collect()
}

fn security_groups(moto: &Moto, name: &str) -> Vec<Value> {
    let r = moto.boto1(
        "describe_security_groups",
        json!({"Filters": [{"Name": "group-name", "Values": [name]}]}),
    );
    r["SecurityGroups"].as_array().unwrap().clone()
}

fn key_pairs(moto: &Moto) -> Vec<Value> {
    moto.boto1("describe_key_pairs", json!({}))["KeyPairs"].as_array().unwrap().clone()
}

fn key_names(moto: &Moto) -> Vec<String> {
    let mut names: Vec<String> =
        key_pairs(moto).iter().map(|k| k["KeyName"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

/// The inbound rules of a boto3 security group as sorted one-line strings.
fn ingress(group: &Value) -> Vec<String> {
    let mut rules = Vec::new();
    for p in group["IpPermissions"].as_array().unwrap() {
        let ports =
            format!("{}:{}-{}", p["IpProtocol"].as_str().unwrap(), p["FromPort"], p["ToPort"]);
        for g in p["UserIdGroupPairs"].as_array().into_iter().flatten() {
            rules.push(format!("{ports} from {}", g["GroupId"].as_str().unwrap()));
        }
        for r in p["IpRanges"].as_array().into_iter().flatten() {
            rules.push(format!("{ports} from {}", r["CidrIp"].as_str().unwrap()));
        }
        for r in p["Ipv6Ranges"].as_array().into_iter().flatten() {
            rules.push(format!("{ports} from {}", r["CidrIpv6"].as_str().unwrap()));
        }
    }
    rules.sort();
    rules
}

/// The security group `rmpi-demo` has exactly: everything from itself, SSH from the CIDR.
fn assert_exact_rules(moto: &Moto, name: &str) -> String {
    let groups = security_groups(moto, name);
    assert_eq!(groups.len(), 1, "{groups:?}");
    let id = groups[0]["GroupId"].as_str().unwrap().to_string();
    let all_ports =
        |p: &Value| p["FromPort"].is_null() || p["FromPort"] == -1 || p["FromPort"] == 0;
    let perms = groups[0]["IpPermissions"].as_array().unwrap();
    let everything = perms.iter().find(|p| p["IpProtocol"] == "-1").expect("an all-traffic rule");
    assert!(all_ports(everything), "{everything}");
    let rules = ingress(&groups[0]);
    let self_rule = rules.iter().find(|r| r.starts_with("-1:")).unwrap().clone();
    assert_eq!(
        rules,
        [self_rule.clone(), "tcp:22-22 from 203.0.113.7/32".to_string()],
        "rules of {name}"
    );
    assert!(self_rule.ends_with(&format!(" from {id}")), "{self_rule}");
    assert_eq!(tag(&groups[0], "Cluster"), Some(name.trim_start_matches("rmpi-")));
    assert_eq!(tag(&groups[0], "CreatedBy"), Some("rmpi-ec2"));
    id
}

#[test]
fn up_reuse_list_down() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let endpoint = moto.endpoint.clone();
    let rsa = fixture("id_rsa.pub");
    let ed25519 = fixture("id_ed25519.pub");
    let (rsa, ed25519) = (rsa.to_str().unwrap(), ed25519.to_str().unwrap());

    // Things rmpi-ec2 did not make: the user's own key pair (the ed25519 key), a security
    // group, and an instance of another cluster. `down` must leave them all alone.
    let material = std::fs::read_to_string(fixture("id_ed25519.pub")).unwrap();
    moto.boto(&[
        ("import_key_pair", json!({"KeyName": "laptop", "PublicKeyMaterial": material})),
        ("create_security_group", json!({"GroupName": "mine", "Description": "user's"})),
    ]);
    moto.seed(&json!({"instances": [{"type": "t2.micro", "tags": {"Cluster": "other"}}]}));

    // Dry run: says what it would do, makes nothing.
    let (code, stdout, stderr) =
        rmpi_ec2(home, &endpoint, &[up_args("demo", "3", rsa), vec!["--dry-run"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    for line in [
        "would import the public key as key pair rmpi-demo",
        "would create security group rmpi-demo in vpc-",
        "would allow inbound on sg-(new): all traffic from sg-(new), tcp port 22 from 203.0.113.7/32",
        "would launch 3 t3.micro instances in the default subnet (image ami-12345678, key pair rmpi-demo",
        "would write the hostfile demo.hosts",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert_eq!(key_names(&moto), ["laptop"]);
    assert!(security_groups(&moto, "rmpi-demo").is_empty());
    assert!(live(&moto, "demo").is_empty());

    // Up: imports the RSA key (no key pair holds it), creates the group, launches, waits,
    // writes the hostfile and prints the next commands.
    let (code, stdout, stderr) = rmpi_ec2(home, &endpoint, &up_args("demo", "3", rsa));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout, "rmpirun -n 6 --hostfile demo.hosts ./your-program\nrmpi-ec2 down --cluster demo\n",
        "{stderr}"
    );
    assert!(stderr.contains("imported key pair rmpi-demo"), "{stderr}");
    assert!(stderr.contains("3 instances ready after"), "{stderr}");
    let nodes = live(&moto, "demo");
    assert_eq!(nodes.len(), 3);
    let group_id = assert_exact_rules(&moto, "rmpi-demo");
    for n in &nodes {
        assert_eq!(n["State"]["Name"], "running");
        assert_eq!(n["InstanceType"], "t3.micro");
        assert_eq!(n["KeyName"], "rmpi-demo");
        assert_eq!(tag(n, "CreatedBy"), Some("rmpi-ec2"));
        let groups: Vec<&str> = n["SecurityGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["GroupId"].as_str().unwrap())
            .collect();
        assert_eq!(groups, [group_id.as_str()]);
    }
    let keys = key_pairs(&moto);
    let made = keys.iter().find(|k| k["KeyName"] == "rmpi-demo").unwrap();
    assert_eq!(tag(made, "Cluster"), Some("demo"));
    // The hostfile `up` wrote is what `hostfile --tag` says about the same cluster.
    let written = std::fs::read_to_string(home.join("demo.hosts")).unwrap();
    let (code, listed, stderr) = rmpi_ec2(home, &endpoint, &["hostfile", "--tag", "Cluster=demo"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(written, listed);
    assert_eq!(written.lines().count(), 3);
    assert!(written.lines().all(|l| l.ends_with(" slots=2")), "{written}");

    // Someone opens the group wider; up again reuses everything, puts the rules back to
    // exactly the stated ones, and launches nothing.
    moto.boto1(
        "authorize_security_group_ingress",
        json!({"GroupId": group_id, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}),
    );
    let (code, stdout2, stderr) = rmpi_ec2(home, &endpoint, &up_args("demo", "3", rsa));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout2, stdout);
    for line in [
        "key pair rmpi-demo (",
        ") already holds this public key: reusing it",
        &format!("security group rmpi-demo ({group_id}) exists: reusing it"),
        &format!("revoke inbound on {group_id}: tcp port 80 from 0.0.0.0/0"),
        "cluster demo already has 3 of 3 instances",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("launched"), "{stderr}");
    assert_eq!(assert_exact_rules(&moto, "rmpi-demo"), group_id);
    let mut before: Vec<&str> = nodes.iter().map(|n| n["InstanceId"].as_str().unwrap()).collect();
    let again = live(&moto, "demo");
    let mut after: Vec<&str> = again.iter().map(|n| n["InstanceId"].as_str().unwrap()).collect();
    before.sort();
    after.sort();
    assert_eq!(before, after);
    assert_eq!(key_names(&moto), ["laptop", "rmpi-demo"]);
    assert_eq!(std::fs::read_to_string(home.join("demo.hosts")).unwrap(), written);

    // A second cluster with the ed25519 key: the user's own `laptop` key pair holds it.
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &up_args("two", "1", ed25519));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("key pair laptop ("), "{stderr}");
    assert_eq!(key_names(&moto), ["laptop", "rmpi-demo"]);
    assert_eq!(live(&moto, "two")[0]["KeyName"], "laptop");
    // Growing it launches only the missing instance; shrinking is refused.
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &up_args("two", "2", ed25519));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("cluster two already has 1 of 2 instances"), "{stderr}");
    assert!(stderr.contains("launched 1 t3.micro instances in the default subnet"), "{stderr}");
    assert_eq!(live(&moto, "two").len(), 2);
    assert_eq!(std::fs::read_to_string(home.join("two.hosts")).unwrap().lines().count(), 2);
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &up_args("two", "1", ed25519));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cluster two: already has 2 instances, more than --count 1"),
        "{stderr}"
    );

    // List: both clusters, by tag.
    let (code, table, stderr) = rmpi_ec2(home, &endpoint, &["list"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("CLUSTER  NODES  TYPES"), "{table}");
    let demo: Vec<&str> = lines[1].split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
    assert_eq!(demo[..4], ["demo", "3", "3 t3.micro", "3 running"], "{table}");
    assert!(demo[4].ends_with('s') || demo[4].ends_with('m'), "age {}", demo[4]);
    assert_eq!(demo[5], "security group, key pair");
    assert!(lines[2].starts_with("two      2      2 t3.micro"), "{table}");
    assert!(lines[2].ends_with("security group"), "the user's key is not listed: {table}");

    // Down, dry run: says what it would do, changes nothing.
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &["down", "--cluster", "demo", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(&format!("would terminate {}", after.join(", "))), "{stderr}");
    assert!(
        stderr.contains(&format!("would delete security group rmpi-demo ({group_id})")),
        "{stderr}"
    );
    assert!(stderr.contains("would delete key pair rmpi-demo ("), "{stderr}");
    assert_eq!(live(&moto, "demo").len(), 3);

    // Down: nothing of demo is left; everything else is.
    let (code, stdout, stderr) = rmpi_ec2(home, &endpoint, &["down", "--cluster", "demo"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("3 instances terminated after"), "{stderr}");
    assert!(live(&moto, "demo").is_empty());
    for id in &after {
        let i = instances(&moto).into_iter().find(|i| i["InstanceId"] == *id).unwrap();
        assert_eq!(i["State"]["Name"], "terminated");
    }
    assert!(security_groups(&moto, "rmpi-demo").is_empty());
    assert_eq!(key_names(&moto), ["laptop"]);
    assert_eq!(security_groups(&moto, "mine").len(), 1);
    assert_eq!(security_groups(&moto, "rmpi-two").len(), 1);
    assert_eq!(live(&moto, "other").len(), 1);
    assert_eq!(live(&moto, "two").len(), 2);

    // Down again: a clear no-op.
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &["down", "--cluster", "demo"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("nothing to remove: no instance, security group or key pair made by rmpi-ec2 up for cluster demo"), "{stderr}");

    // Down of two: its own group goes, the user's key pair stays.
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &["down", "--cluster", "two"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(security_groups(&moto, "rmpi-two").is_empty());
    assert_eq!(key_names(&moto), ["laptop"]);
    let (code, table, stderr) = rmpi_ec2(home, &endpoint, &["list"]);
    assert_eq!((code, table.as_str()), (0, ""), "{stderr}");
    assert!(stderr.contains("no clusters made by rmpi-ec2 up in us-east-1"), "{stderr}");
}

#[test]
fn down_of_an_unknown_cluster_is_a_no_op() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    moto.seed(&json!({"instances": [{"type": "t2.micro", "tags": {"Cluster": "ghost"}}]}));
    let (code, stdout, stderr) =
        rmpi_ec2(home.path(), &moto.endpoint, &["down", "--cluster", "ghost"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("carries Cluster=ghost but was not launched by rmpi-ec2 up: left alone"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing to remove"), "{stderr}");
    assert_eq!(live(&moto, "ghost").len(), 1, "a hand-made instance is never terminated");
    // And up refuses to adopt that name.
    let key = fixture("id_ed25519.pub");
    let (code, _, stderr) =
        rmpi_ec2(home.path(), &moto.endpoint, &up_args("ghost", "1", key.to_str().unwrap()));
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "carry Cluster=ghost but were not launched by rmpi-ec2 up; pick another cluster name"
        ),
        "{stderr}"
    );
    assert!(key_names(&moto).is_empty(), "nothing is made before the checks pass");
}

/// A proxy in front of moto: RunInstances calls go through `rewrite` (which either returns the
/// body to forward or answers itself), everything else is forwarded unchanged.
fn proxy(
    moto: &Moto,
    rewrite: impl Fn(&SeenRequest) -> Result<String, Reply> + Send + Sync + 'static,
) -> Stub {
    let port = moto.port_number();
    Stub::start(move |req: &SeenRequest| {
        if req.param("Action").as_deref() == Some("RunInstances") {
            match rewrite(req) {
                Ok(body) => forward(port, req, &body),
                Err(reply) => reply,
            }
        } else {
            forward(port, req, &req.body)
        }
    })
}

#[test]
fn a_short_launch_is_rolled_back() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // EC2 launches one instance fewer than asked for (the request reaches moto with
    // MinCount = MaxCount = N - 1), so the client gets a short answer.
    let stub = proxy(&moto, |req| {
        let n: usize = req.param("MaxCount").unwrap().parse().unwrap();
        let fewer = (n - 1).to_string();
        Ok(with_param(&with_param(&req.body, "MinCount", &fewer), "MaxCount", &fewer))
    });
    let key = fixture("id_ed25519.pub");
    let (code, stdout, stderr) =
        rmpi_ec2(home, &stub.url, &up_args("short", "3", key.to_str().unwrap()));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    let got: Vec<String> =
        instances(&moto).iter().map(|i| i["InstanceId"].as_str().unwrap().to_string()).collect();
    assert_eq!(got.len(), 2, "moto launched two");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "rmpi-ec2: could not launch 3 instances for cluster short: t3.micro in the default subnet: EC2 gave only 2 (terminated {})",
            got.join(", ")
        )),
        "{stderr}"
    );
    assert!(last.contains("`rmpi-ec2 down --cluster short` removes them"), "{last}");
    assert!(live(&moto, "short").is_empty(), "both were terminated");
    assert!(!home.join("short.hosts").exists());
    // What is left (group, key pair) is listed, and goes with down.
    let (code, table, stderr) = rmpi_ec2(home, &moto.endpoint, &["list"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        table.lines().nth(1),
        Some("short    0      -      -       -    security group, key pair"),
        "{table}"
    );
    let (code, _, stderr) = rmpi_ec2(home, &moto.endpoint, &["down", "--cluster", "short"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(security_groups(&moto, "rmpi-short").is_empty());
    assert!(key_names(&moto).is_empty());
}

#[test]
fn no_capacity_falls_back_to_the_next_type() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // EC2 has no t3.micro capacity: the proxy answers as EC2 does; other types reach moto.
    let stub = proxy(&moto, |req| {
        if req.param("InstanceType").as_deref() == Some("t3.micro") {
            Err(Reply::status(500, common::ec2_error("InsufficientInstanceCapacity", "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested.")))
        } else {
            Ok(req.body.clone())
        }
    });
    let key = fixture("id_ed25519.pub");
    let key = key.to_str().unwrap();
    // Without a fallback: a clear failure naming the cause, nothing launched.
    let (code, _, stderr) = rmpi_ec2(home, &stub.url, &up_args("cap", "2", key));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("could not launch 2 instances for cluster cap: t3.micro in the default subnet: InsufficientInstanceCapacity (--fallback-type and --fallback-subnet give other choices to try)"),
        "{stderr}"
    );
    assert!(instances(&moto).is_empty());
    // With one: the next type is launched.
    let (code, _, stderr) = rmpi_ec2(
        home,
        &stub.url,
        &[up_args("cap", "2", key), vec!["--fallback-type", "m5.large"]].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("t3.micro in the default subnet: EC2 RunInstances failed with HTTP 500: InsufficientInstanceCapacity"), "{stderr}");
    let nodes = live(&moto, "cap");
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n["InstanceType"] == "m5.large"));
    // A capacity error is answered at once, not retried like a server error: one t3.micro
    // request per run.
    let t3_runs = stub
        .seen()
        .iter()
        .filter(|r| r.param("Action").as_deref() == Some("RunInstances"))
        .filter(|r| r.param("InstanceType").as_deref() == Some("t3.micro"))
        .count();
    assert_eq!(t3_runs, 2);
    assert_eq!(std::fs::read_to_string(home.join("cap.hosts")).unwrap().lines().count(), 2);
}

#[test]
fn up_checks_before_it_makes_anything() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let endpoint = moto.endpoint.clone();
    let key = fixture("id_ed25519.pub");
    let key = key.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            up_args("a", "1", "/nonexistent/key.pub"),
            "SSH public key /nonexistent/key.pub: no such file",
        ),
        (up_args("a", "0", key), "--count must be at least 1"),
        (
            up_args("a", "1", key)
                .into_iter()
                .map(|a| if a == "203.0.113.7/32" { "10.0.0.1/8" } else { a })
                .collect(),
            "host bits are set",
        ),
        ([up_args("a", "1", key), vec!["--subnet", "subnet-nope"]].concat(), "subnet-nope"),
        (up_args("bad name", "1", key), "invalid cluster name `bad name`"),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = rmpi_ec2(home, &endpoint, &args);
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // No --image: the newest Amazon Linux 2023 image for the type's architecture, as boto3
    // finds it (latest creation date, then greatest name).
    let images = moto.boto1(
        "describe_images",
        json!({"Owners": ["amazon"], "Filters": [{"Name": "name", "Values": ["al2023-ami-2023.*"]}]}),
    );
    let newest = images["Images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["Architecture"] == "x86_64" && !i["Name"].as_str().unwrap().contains("minimal")
        })
        .max_by_key(|i| {
            (
                i["CreationDate"].as_str().unwrap().to_string(),
                i["Name"].as_str().unwrap().to_string(),
            )
        })
        .expect("moto has Amazon Linux 2023 images")["ImageId"]
        .as_str()
        .unwrap()
        .to_string();
    let args: Vec<&str> = up_args("a", "1", key)
        .into_iter()
        .filter(|a| *a != "--image" && *a != "ami-12345678")
        .chain(["--dry-run"])
        .collect();
    let (code, _, stderr) = rmpi_ec2(home, &endpoint, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("image {newest} (the newest Amazon Linux 2023 for t3.micro)")),
        "{stderr}"
    );
    assert!(key_names(&moto).is_empty());
    assert!(security_groups(&moto, "rmpi-a").is_empty());
    assert!(instances(&moto).is_empty());
}

/// The placement groups the proxy below keeps: `(name, strategy, tags)`.
type Groups = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<(String, String)>)>>>;

/// moto lacks placement groups: this proxy answers the three placement-group actions itself,
/// from a list it keeps, in EC2's response format, and forwards everything else to moto.
fn placement_proxy(moto: &Moto, groups: Groups) -> Stub {
    let port = moto.port_number();
    Stub::start(move |req: &SeenRequest| {
        let mut list = groups.lock().unwrap();
        let name = req.param("GroupName").unwrap_or_default();
        match req.param("Action").as_deref() {
            Some("CreatePlacementGroup") => {
                let tags = (1..)
                    .map_while(|i| {
                        let key = req.param(&format!("TagSpecification.1.Tag.{i}.Key"))?;
                        Some((key, req.param(&format!("TagSpecification.1.Tag.{i}.Value"))?))
                    })
                    .collect();
                list.push((name, req.param("Strategy").unwrap_or_default(), tags));
                Reply::ok("<CreatePlacementGroupResponse><return>true</return></CreatePlacementGroupResponse>")
            }
            Some("DeletePlacementGroup") => {
                list.retain(|g| g.0 != name);
                Reply::ok("<DeletePlacementGroupResponse><return>true</return></DeletePlacementGroupResponse>")
            }
            Some("DescribePlacementGroups") => {
                let wanted = req.param("Filter.1.Value.1");
                let items: String = list
                    .iter()
                    .filter(|g| wanted.as_ref().is_none_or(|w| *w == g.0))
                    .map(|(n, strategy, tags)| {
                        let tags: String = tags
                            .iter()
                            .map(|(k, v)| format!("<item><key>{k}</key><value>{v}</value></item>"))
                            .collect();
                        format!(
                            "<item><groupName>{n}</groupName><strategy>{strategy}</strategy>\
                             <state>available</state><tagSet>{tags}</tagSet></item>"
                        )
                    })
                    .collect();
                Reply::ok(format!(
                    "<DescribePlacementGroupsResponse><placementGroupSet>{items}</placementGroupSet></DescribePlacementGroupsResponse>"
                ))
            }
            _ => {
                drop(list);
                forward(port, req, &req.body)
            }
        }
    })
}

#[test]
fn placement_group_made_used_and_deleted() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let groups = Groups::default();
    let stub = placement_proxy(&moto, groups.clone());
    let key = fixture("id_ed25519.pub");
    let args: Vec<&str> = up_args("pg", "2", key.to_str().unwrap())
        .into_iter()
        .filter(|a| *a != "--no-placement-group")
        .collect();
    let (code, _, stderr) = rmpi_ec2(home, &stub.url, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("created cluster placement group rmpi-pg"), "{stderr}");
    let made = groups.lock().unwrap().clone();
    assert_eq!(made.len(), 1);
    assert_eq!((made[0].0.as_str(), made[0].1.as_str()), ("rmpi-pg", "cluster"));
    assert_eq!(
        made[0].2,
        [("Cluster".into(), "pg".into()), ("CreatedBy".into(), "rmpi-ec2".into())]
    );
    let runs: Vec<SeenRequest> = stub
        .seen()
        .into_iter()
        .filter(|r| r.param("Action").as_deref() == Some("RunInstances"))
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].param("Placement.GroupName").as_deref(), Some("rmpi-pg"));
    let sg = security_groups(&moto, "rmpi-pg");
    assert_eq!(tag(&sg[0], "rmpi-ec2:placement-group"), Some("rmpi-pg"));

    // Up again: reused, not made twice.
    let (code, _, stderr) = rmpi_ec2(home, &stub.url, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("placement group rmpi-pg exists: reusing it"), "{stderr}");
    assert_eq!(groups.lock().unwrap().len(), 1);

    // Down: after the instances are terminated, before the security group.
    let (code, _, stderr) = rmpi_ec2(home, &stub.url, &["down", "--cluster", "pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(groups.lock().unwrap().is_empty());
    let actions: Vec<String> = stub.seen().iter().filter_map(|r| r.param("Action")).collect();
    let at = |a: &str| {
        actions.iter().rposition(|x| x == a).unwrap_or_else(|| panic!("no {a} in {actions:?}"))
    };
    assert!(at("TerminateInstances") < at("DeletePlacementGroup"));
    assert!(at("DeletePlacementGroup") < at("DeleteSecurityGroup"));
    assert!(live(&moto, "pg").is_empty());
    assert!(security_groups(&moto, "rmpi-pg").is_empty());
}

#[test]
fn no_capacity_in_a_subnet_falls_back_to_the_next_subnet() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let subnets = moto.boto1(
        "describe_subnets",
        json!({"Filters": [{"Name": "default-for-az", "Values": ["true"]}]}),
    );
    let mut ids: Vec<String> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["SubnetId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert!(ids.len() >= 2, "{subnets}");
    let (full, spare) = (ids[0].clone(), ids[1].clone());
    let stub = {
        let full = full.clone();
        proxy(&moto, move |req| {
            if req.param("SubnetId").as_deref() == Some(full.as_str()) {
                Err(Reply::status(
                    500,
                    common::ec2_error("InsufficientInstanceCapacity", "no capacity"),
                ))
            } else {
                Ok(req.body.clone())
            }
        })
    };
    let key = fixture("id_ed25519.pub");
    let mut args = up_args("sub", "2", key.to_str().unwrap());
    args.extend(["--subnet", &full, "--fallback-subnet", &spare]);
    let (code, _, stderr) = rmpi_ec2(home, &stub.url, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(&format!("t3.micro in subnet {full} (")), "{stderr}");
    let nodes = live(&moto, "sub");
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n["SubnetId"] == spare.as_str()), "{nodes:?}");

    // A fallback subnet of another VPC is refused before anything is launched.
    let vpc = moto.boto1("create_vpc", json!({"CidrBlock": "10.9.0.0/16"}));
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap();
    let other = moto.boto1("create_subnet", json!({"VpcId": vpc_id, "CidrBlock": "10.9.1.0/24"}));
    let other = other["Subnet"]["SubnetId"].as_str().unwrap();
    let mut args = up_args("sub2", "1", key.to_str().unwrap());
    args.extend(["--subnet", &full, "--fallback-subnet", other]);
    let (code, _, stderr) = rmpi_ec2(home, &moto.endpoint, &args);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("subnet {other} ({vpc_id}): is not in "))
            && stderr.contains("fallback subnets must share the VPC"),
        "{stderr}"
    );
    assert!(live(&moto, "sub2").is_empty());
}

#[test]
fn ssh_from_an_ipv6_network() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();
    let key = fixture("id_ed25519.pub");
    let args: Vec<&str> = up_args("six", "1", key.to_str().unwrap())
        .into_iter()
        .map(|a| if a == "203.0.113.7/32" { "2001:db8:7::/48" } else { a })
        .collect();
    let (code, _, stderr) = rmpi_ec2(home.path(), &moto.endpoint, &args);
    assert_eq!(code, 0, "{stderr}");
    let groups = security_groups(&moto, "rmpi-six");
    let id = groups[0]["GroupId"].as_str().unwrap();
    let rules = ingress(&groups[0]);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules[0].starts_with("-1:") && rules[0].ends_with(&format!(" from {id}")), "{rules:?}");
    assert_eq!(rules[1], "tcp:22-22 from 2001:db8:7::/48");
}
