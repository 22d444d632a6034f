//! The instance-role path of the credential and region chains (IMDSv2), against a local
//! metadata server that enforces the session token the way EC2's does.

mod common;

use common::{cli, describe_instances_body, run, texts, Reply, SeenRequest, Stub};
use rmpi_ec2::env::Env;
use rmpi_ec2::imds::Imds;
use rmpi_ec2::{credentials, region};

const TOKEN: &str = "AQAEAFakeSessionTokenForTests==";
const ROLE: &str = "rmpi-head-role";
const ROLE_SECRET: &str = "imds-secret-Kp3u9";
const ROLE_TOKEN: &str = "imds-session-token-77Xq";

/// A metadata server: `PUT /latest/api/token` (with a TTL header) issues [`TOKEN`]; every `GET`
/// without that token is refused with 401, as IMDSv2 does. `role` is the attached role, if any.
fn metadata_server(role: Option<&'static str>) -> Stub {
    Stub::start(move |req: &SeenRequest| {
        if req.method == "PUT" && req.path == "/latest/api/token" {
            return match req.header("x-aws-ec2-metadata-token-ttl-seconds") {
                Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => {
                    Reply::ok(TOKEN)
                }
                _ => Reply::status(400, "missing or invalid TTL"),
            };
        }
        if req.method != "GET" || req.header("x-aws-ec2-metadata-token") != Some(TOKEN) {
            return Reply::status(401, "");
        }
        let creds_path = "/latest/meta-data/iam/security-credentials/";
        match (req.path.as_str(), role) {
            ("/latest/meta-data/placement/region", _) => Reply::ok("ap-northeast-1"),
            (path, Some(role)) if path == creds_path => Reply::ok(format!("{role}\n")),
            (path, Some(role)) if path == format!("{creds_path}{role}") => Reply::ok(format!(
                r#"{{"Code":"Success","LastUpdated":"2026-11-21T00:00:00Z","Type":"AWS-HMAC",
                    "AccessKeyId":"ASIAIMDSROLE","SecretAccessKey":"{ROLE_SECRET}",
                    "Token":"{ROLE_TOKEN}","Expiration":"2026-11-21T06:00:00Z"}}"#
            )),
            _ => Reply::status(404, "Not Found"),
        }
    })
}

/// An environment with no other source of credentials or region than the metadata service.
fn env_with(server: &Stub, home: &std::path::Path) -> Env {
    Env::from_pairs([
        ("HOME", home.display().to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url.clone()),
    ])
}

#[test]
fn role_credentials_and_region_come_from_imdsv2() {
    let server = metadata_server(Some(ROLE));
    let home = tempfile::tempdir().unwrap();
    let env = env_with(&server, home.path());
    let imds = Imds::from_env(&env).unwrap();

    let resolved = credentials::resolve(None, &env, Some(&imds)).unwrap();
    assert_eq!(resolved.source, format!("instance role `{ROLE}` (IMDSv2)"));
    assert_eq!(resolved.credentials.access_key_id(), "ASIAIMDSROLE");
    assert_eq!(resolved.credentials.secret_access_key(), ROLE_SECRET);
    assert_eq!(resolved.credentials.session_token(), Some(ROLE_TOKEN));
    assert!(resolved.credentials.expiry().is_some());
    assert!(!format!("{resolved:?}").contains(ROLE_SECRET), "Debug shows the secret");

    let region = region::resolve(None, None, &env, Some(&imds)).unwrap();
    assert_eq!(region.region, "ap-northeast-1");
    assert_eq!(region.source, "instance metadata (IMDSv2)");

    // Every read was preceded by a token request and carried the token.
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert!(seen
        .iter()
        .filter(|r| r.method == "GET")
        .all(|r| r.header("x-aws-ec2-metadata-token") == Some(TOKEN)));
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert!(
        paths.contains(&"/latest/meta-data/iam/security-credentials/rmpi-head-role"),
        "{paths:?}"
    );
}

#[test]
fn instance_without_role_or_without_imdsv2_is_explained() {
    let home = tempfile::tempdir().unwrap();
    let server = metadata_server(None);
    let env = env_with(&server, home.path());
    let imds = Imds::from_env(&env).unwrap();
    let err = credentials::resolve(None, &env, Some(&imds)).unwrap_err().to_string();
    assert!(err.contains("no IAM role is attached to this instance"), "{err}");

    // A server that only speaks IMDSv1 refuses the token request.
    let v1 = Stub::start(|_req: &SeenRequest| Reply::status(403, "Forbidden"));
    let env = env_with(&v1, home.path());
    let imds = Imds::from_env(&env).unwrap();
    let err = region::resolve(None, None, &env, Some(&imds)).unwrap_err().to_string();
    assert!(
        err.contains(&format!("instance metadata service {}: getting a token: HTTP 403", v1.url)),
        "{err}"
    );

    // Credentials JSON that cannot be parsed is reported without echoing it (it holds the key).
    let broken = Stub::start(|req: &SeenRequest| match req.path.as_str() {
        "/latest/api/token" => Reply::ok(TOKEN),
        "/latest/meta-data/iam/security-credentials/" => Reply::ok("r"),
        _ => Reply::ok(format!("{{\"SecretAccessKey\":\"{ROLE_SECRET}\"")),
    });
    let env = env_with(&broken, home.path());
    let imds = Imds::from_env(&env).unwrap();
    let err = credentials::resolve(None, &env, Some(&imds)).unwrap_err().to_string();
    assert!(err.contains("credentials of role `r` are not valid JSON"), "{err}");
    assert!(!err.contains(ROLE_SECRET), "{err}");
}

#[test]
fn cli_on_a_head_node_uses_the_instance_role_and_region() {
    let server = metadata_server(Some(ROLE));
    let ec2 = Stub::start(|req: &SeenRequest| match req.param("Action").as_deref() {
        Some("DescribeInstances") => Reply::ok(describe_instances_body(
            &[("i-0b", "c5.large", "10.2.0.9"), ("i-0a", "c5.large", "10.2.0.8")],
            &[("Cluster", "head")],
        )),
        _ => Reply::status(400, common::ec2_error("InvalidAction", "unexpected")),
    });
    let home = tempfile::tempdir().unwrap();
    let out = run(cli(home.path())
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &server.url)
        .env("AWS_ENDPOINT_URL", &ec2.url)
        .args(["hostfile", "--tag", "Cluster=head", "--slots", "2"]));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    // Same launch time: ordered by instance id.
    assert_eq!(stdout, "10.2.0.8 slots=2\n10.2.0.9 slots=2\n");
    assert!(
        stderr.contains("credentials from instance role `rmpi-head-role` (IMDSv2)"),
        "{stderr}"
    );
    assert!(!stderr.contains(ROLE_SECRET) && !stderr.contains(ROLE_TOKEN), "{stderr}");
    let request = &ec2.seen()[0];
    let auth = request.header("authorization").unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIAIMDSROLE/"), "{auth}");
    assert!(auth.contains("/ap-northeast-1/ec2/aws4_request"), "{auth}");
    assert!(auth.contains("x-amz-security-token"), "{auth}");
    assert_eq!(request.header("x-amz-security-token"), Some(ROLE_TOKEN));
}
