//! Errors, credentials and signing, end to end, against a local HTTP server the test controls.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use common::{cli, describe_instances_body, ec2_error, run, texts, Reply, SeenRequest, Stub};
use rmpi_ec2::query::{Client, RetryPolicy};
use rmpi_ec2::select;
use rmpi_ec2::Error;

const SECRET: &str = "errors-secret-8fQ1";

const TYPES_BODY: &str = "<DescribeInstanceTypesResponse><instanceTypeSet><item>\
    <instanceType>m5.xlarge</instanceType><vCpuInfo><defaultVCpus>4</defaultVCpus>\
    <defaultCores>2</defaultCores></vCpuInfo></item></instanceTypeSet>\
    </DescribeInstanceTypesResponse>";

/// An EC2 endpoint with one running m5.xlarge at 10.1.0.7; DescribeInstanceTypes answers with
/// `types` (status, body).
fn ec2_stub(types: (u16, String)) -> Stub {
    Stub::start(move |req: &SeenRequest| match req.param("Action").as_deref() {
        Some("DescribeInstances") => Reply::ok(describe_instances_body(
            &[("i-0a", "m5.xlarge", "10.1.0.7")],
            &[("Cluster", "x")],
        )),
        Some("DescribeInstanceTypes") => Reply::status(types.0, types.1.clone()),
        _ => Reply::status(400, ec2_error("InvalidAction", "unknown action")),
    })
}

fn actions(stub: &Stub) -> Vec<String> {
    stub.seen().iter().filter_map(|r| r.param("Action")).collect()
}

#[test]
fn missing_region_is_reported_with_what_was_tried() {
    let home = tempfile::tempdir().unwrap();
    let closed = common::free_port();
    let out = run(cli(home.path())
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://127.0.0.1:{closed}"))
        .env("AWS_ACCESS_KEY_ID", "AKIDX")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .args(["hostfile", "--tag", "Cluster=x"]));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    let expected = format!(
        "rmpi-ec2: no AWS region; tried: --region, AWS_REGION, AWS_DEFAULT_REGION, profile \
         `default` in {}/.aws/config, instance metadata (instance metadata service \
         http://127.0.0.1:{closed}: getting a token: ",
        home.path().display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("Pass --region"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(SECRET));
}

#[test]
fn missing_credentials_are_reported_with_what_was_tried() {
    let home = tempfile::tempdir().unwrap();
    let out = run(cli(home.path()).env("AWS_REGION", "eu-west-1").args([
        "hostfile",
        "--tag",
        "Cluster=x",
    ]));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    let expected = format!(
        "rmpi-ec2: no AWS credentials found; tried: environment (AWS_ACCESS_KEY_ID is not set); \
         profile `default` (not in {home}/.aws/config or {home}/.aws/credentials); instance role \
         (AWS_EC2_METADATA_DISABLED is set). Set AWS_ACCESS_KEY_ID",
        home = home.path().display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");

    // A profile named in AWS_PROFILE that does not exist is an error of its own.
    let out = run(cli(home.path())
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_PROFILE", "ghost")
        .args(["hostfile", "--tag", "Cluster=x"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        texts(&out).1.starts_with("rmpi-ec2: AWS profile `ghost` not found in "),
        "{}",
        texts(&out).1
    );
}

#[test]
fn access_denied_names_the_iam_action() {
    let home = tempfile::tempdir().unwrap();
    let denied =
        ec2_error("UnauthorizedOperation", "You are not authorized to perform this operation.");
    let stub = Stub::start(move |_req: &SeenRequest| Reply::status(403, denied.clone()));
    let out = run(cli(home.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDDENIED")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", "session-token-SECRET2")
        .args(["hostfile", "--tag", "Cluster=x", "--endpoint-url", &stub.url]));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert!(
        stderr.ends_with(
            "rmpi-ec2: access denied: EC2 refused DescribeInstances (UnauthorizedOperation); the \
             caller's IAM policy must allow `ec2:DescribeInstances`: You are not authorized to \
             perform this operation.\n"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET) && !stderr.contains("SECRET2"), "{stderr}");
    // Denials are not retried.
    assert_eq!(actions(&stub), ["DescribeInstances"]);

    // The second action, DescribeInstanceTypes, is named when it is the one refused.
    let stub = ec2_stub((403, ec2_error("UnauthorizedOperation", "You are not authorized")));
    let out = run(cli(home.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDDENIED")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .args(["hostfile", "--tag", "Cluster=x", "--endpoint-url", &stub.url]));
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("must allow `ec2:DescribeInstanceTypes`"), "{}", texts(&out).1);
    // ... and a fixed slot count does not need it at all.
    let stub = ec2_stub((403, ec2_error("UnauthorizedOperation", "You are not authorized")));
    let out = run(cli(home.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDDENIED")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .args(["hostfile", "--tag", "Cluster=x", "--slots", "2", "--endpoint-url", &stub.url]));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "10.1.0.7 slots=2\n");
    assert_eq!(actions(&stub), ["DescribeInstances"]);
}

#[test]
fn credentials_from_a_profile_reach_the_request_and_signatures_match_botocore() {
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(aws.join("config"), "[profile dev]\nregion = eu-west-3\n").unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n\n\
                 [dev]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();
    let stub = ec2_stub((200, TYPES_BODY.to_string()));
    let out = run(cli(home.path())
        .env("AWS_PROFILE", "dev")
        .env("AWS_ENDPOINT_URL", &stub.url)
        .args(["hostfile", "--tag", "Cluster=x"]));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "10.1.0.7 slots=4\n");
    assert!(
        stderr.contains("region eu-west-3 (from profile `dev`), credentials from profile `dev`"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
    let seen = stub.seen();
    assert_eq!(actions(&stub), ["DescribeInstances", "DescribeInstanceTypes"]);
    let describe = &seen[0];
    let auth = describe.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPROFILE/")
            && auth.contains("/eu-west-3/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="),
        "{auth}"
    );
    assert_eq!(describe.param("Version").as_deref(), Some("2016-11-15"));
    assert_eq!(describe.param("Filter.1.Name").as_deref(), Some("tag:Cluster"));
    assert_eq!(describe.param("Filter.2.Value.1").as_deref(), Some("running"));
    assert!(!describe.headers.iter().any(|(_, v)| v.contains(SECRET)));

    // botocore, given the same request, credentials and time, computes the same signature.
    let python = common::moto_server_path().with_file_name("python");
    let script = r#"
import datetime, json, sys
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
req = json.loads(sys.stdin.read())
fixed = datetime.datetime.strptime(req["x-amz-date"], "%Y%m%dT%H%M%SZ")
botocore.auth.get_current_datetime = lambda *args, **kwargs: fixed
r = AWSRequest(method="POST", url=req["url"], data=req["body"].encode(),
               headers={"Content-Type": req["content-type"]})
SigV4Auth(Credentials(req["key"], req["secret"]), "ec2", req["region"]).add_auth(r)
print(r.headers["Authorization"])
"#;
    let input = serde_json::json!({
        "url": format!("{}/", stub.url),
        "body": describe.body,
        "content-type": describe.header("content-type").unwrap(),
        "x-amz-date": describe.header("x-amz-date").unwrap(),
        "key": "AKIDPROFILE",
        "secret": SECRET,
        "region": "eu-west-3",
    });
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.to_string().as_bytes())
        .unwrap();
    let out = common::wait_output(child, Duration::from_secs(60));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), auth);

    // --profile overrides keys in the environment.
    let stub = ec2_stub((200, TYPES_BODY.to_string()));
    let out = run(cli(home.path())
        .env("AWS_ACCESS_KEY_ID", "AKIDENV")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_ENDPOINT_URL", &stub.url)
        .args(["hostfile", "--tag", "Cluster=x", "--profile", "dev"]));
    assert!(out.status.success(), "{}", texts(&out).1);
    let auth = stub.seen()[0].header("authorization").unwrap().to_string();
    assert!(auth.contains("Credential=AKIDPROFILE/"), "{auth}");
}

fn fast_client(url: &str, attempts: u32) -> Client {
    Client::new(url, "us-east-1", Credentials::new("AKIDT", SECRET, None, None, "test"))
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        })
}

#[test]
fn throttling_is_retried_with_backoff_then_reported() {
    // Throttled twice, then served.
    let count = Arc::new(AtomicU32::new(0));
    let stub = {
        let count = count.clone();
        Stub::start(move |_req: &SeenRequest| {
            if count.fetch_add(1, Ordering::SeqCst) < 2 {
                Reply::status(400, ec2_error("RequestLimitExceeded", "Request limit exceeded."))
            } else {
                Reply::ok(describe_instances_body(&[("i-1", "t3.micro", "10.0.0.1")], &[]))
            }
        })
    };
    let filters = select::filters(&[], &["running"]);
    let found = fast_client(&stub.url, 5).describe_instances(&filters, None).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // Always throttled (by code, or by HTTP 503 without an XML body): gives up after the budget.
    for (status, body) in
        [(400, ec2_error("Throttling", "Rate exceeded")), (503, "Slow down".to_string())]
    {
        let stub = Stub::start(move |_req: &SeenRequest| Reply::status(status, body.clone()));
        let started = std::time::Instant::now();
        let err = fast_client(&stub.url, 4).describe_instances(&filters, None).unwrap_err();
        assert!(matches!(&err, Error::Throttled { attempts: 4, .. }), "{err}");
        assert!(
            err.to_string().starts_with("EC2 DescribeInstances still throttled after 4 attempts"),
            "{err}"
        );
        assert_eq!(stub.seen().len(), 4);
        // Three backoff delays of at least 10, 20 and 40 ms.
        assert!(started.elapsed() >= Duration::from_millis(70));
    }

    // Other client errors are not retried and keep EC2's code and message.
    let stub = Stub::start(|_req: &SeenRequest| {
        Reply::status(
            401,
            ec2_error(
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
            ),
        )
    });
    let err = fast_client(&stub.url, 4).describe_instances(&filters, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "EC2 DescribeInstances failed with HTTP 401: AuthFailure: AWS was not able to validate the \
         provided access credentials (the credentials were not accepted: check the access key id)"
    );
    assert_eq!(stub.seen().len(), 1);

    // An endpoint that does not answer at all.
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let err = fast_client(&closed, 2).describe_instances(&filters, None).unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
}

#[test]
fn usage_errors_exit_non_zero() {
    let home = tempfile::tempdir().unwrap();
    let out = run(cli(home.path()).args(["hostfile"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("--tag"));
    let out = run(cli(home.path()).args(["hostfile", "--tag", "=x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("the tag key is empty"), "{}", texts(&out).1);
    let out =
        run(cli(home.path()).args(["hostfile", "--tag", "A", "--format", "mpich", "--user", "u"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        texts(&out).1,
        "rmpi-ec2: the mpich hostfile format has no place for an SSH user or port; use --format \
         rmpi or set them in ~/.ssh/config\n"
    );
    let out = run(cli(home.path()).args(["hostfile", "--tag", "A", "--page-size", "3"]));
    assert_eq!(out.status.code(), Some(2));
}
