//! A minimal client of the EC2 Query API (version 2016-11-15): signed form POSTs, retries with
//! backoff, error mapping, pagination.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::model::{CpuInfo, Instance};
use crate::{http, signing, xml};

/// The Query API version spoken.
pub const API_VERSION: &str = "2016-11-15";

/// Most pages followed before giving up (a loop guard: 10 000 pages of 1000 instances).
const MAX_PAGES: usize = 10_000;

/// How throttled or failed requests are retried: exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Requests sent at most (the first one included).
    pub max_attempts: u32,
    /// Delay before the first retry (doubled after each one, then jittered).
    pub base_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based): half of the capped exponential delay
    /// plus a random part up to the other half.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << retry.min(20)).min(self.max_delay);
        let half = exp / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::random_range(0..=nanos))
    }
}

/// An EC2 `Filter.N` of a describe call: `name` matches any of `values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// E.g. `tag:Cluster`, `tag-key`, `instance-state-name`.
    pub name: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// Error codes that mean "slow down".
const THROTTLING_CODES: [&str; 6] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequestsException",
    "SlowDown",
];

/// Error codes that mean "try again".
const TRANSIENT_CODES: [&str; 4] =
    ["ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure"];

/// Error codes EC2 sends with HTTP 500 that are not transient: there is no capacity for the
/// request now; retrying the same request at once does not help (`up` tries its fallbacks).
pub const CAPACITY_CODES: [&str; 3] =
    ["InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity"];

/// Error codes that mean "not allowed".
const DENIED_CODES: [&str; 3] = ["UnauthorizedOperation", "AccessDenied", "AccessDeniedException"];

/// The endpoint URL: `flag` (`--endpoint-url`), else `AWS_ENDPOINT_URL_EC2`, else
/// `AWS_ENDPOINT_URL`, else the public endpoint of `region`.
pub fn endpoint_url(flag: Option<&str>, env: &Env, region: &str) -> String {
    let explicit = flag
        .filter(|f| !f.trim().is_empty())
        .or_else(|| env.get("AWS_ENDPOINT_URL_EC2"))
        .or_else(|| env.get("AWS_ENDPOINT_URL"));
    match explicit {
        Some(url) => url.trim().to_string(),
        None if region.starts_with("cn-") => format!("https://ec2.{region}.amazonaws.com.cn/"),
        None => format!("https://ec2.{region}.amazonaws.com/"),
    }
}

/// A signed EC2 Query API client for one endpoint, region and set of credentials.
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    region: String,
    credentials: Credentials,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials) // Debug of Credentials redacts the secret
            .finish()
    }
}

/// How one attempt ended, for the retry loop.
enum Attempt {
    Done(String),
    Retry { code: String, throttled: bool, error: Error },
    Fail(Error),
}

impl Client {
    /// A client for `endpoint` (`http://` or `https://` URL).
    pub fn new(endpoint: &str, region: &str, credentials: Credentials) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            url: endpoint.to_string(),
            reason: reason.to_string(),
        };
        let rest = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .ok_or_else(|| invalid("must start with http:// or https://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("no host"));
        }
        if rest.contains(['?', '#', ' ']) {
            return Err(invalid("must not contain a query, fragment or space"));
        }
        let mut endpoint = endpoint.to_string();
        if !rest.contains('/') {
            endpoint.push('/');
        }
        let agent = http::agent(Duration::from_secs(10), Duration::from_secs(60), true);
        Ok(Self {
            agent,
            endpoint,
            region: region.to_string(),
            credentials,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Calls `action` with `params` (besides `Action` and `Version`), retrying throttling and
    /// transient failures, and returns the response body of the first success.
    pub fn call(&self, action: &str, params: &[(String, String)]) -> Result<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action).append_pair("Version", API_VERSION);
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let mut retry = 0;
        loop {
            match self.attempt(action, &body)? {
                Attempt::Done(text) => return Ok(text),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { code, throttled, error } => {
                    let attempts = retry + 1;
                    if attempts >= self.retry.max_attempts {
                        return Err(if throttled {
                            Error::Throttled { action: action.to_string(), attempts, code }
                        } else {
                            error
                        });
                    }
                    std::thread::sleep(self.retry.delay(retry));
                    retry += 1;
                }
            }
        }
    }

    fn attempt(&self, action: &str, body: &str) -> Result<Attempt> {
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let request = signing::Request {
            method: "POST",
            url: &self.endpoint,
            headers: &[("content-type", content_type)],
            body: body.as_bytes(),
        };
        let signed =
            signing::sign_v4(&request, &self.credentials, &self.region, "ec2", SystemTime::now())
                .map_err(|reason| Error::Signing { endpoint: self.endpoint.clone(), reason })?;
        let mut builder = self.agent.post(&self.endpoint).header("content-type", content_type);
        for (name, value) in &signed {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let reply = match http::reply(builder.send(body)) {
            Ok(reply) => reply,
            Err(reason) => {
                let error = Error::Transport {
                    action: action.to_string(),
                    endpoint: self.endpoint.clone(),
                    reason,
                };
                return Ok(Attempt::Retry { code: "transport".into(), throttled: false, error });
            }
        };
        if (200..300).contains(&reply.status) {
            return Ok(Attempt::Done(reply.body));
        }
        let (code, message) = xml::error(&reply.body).unwrap_or_else(|| {
            (format!("HTTP {}", reply.status), reply.body.chars().take(200).collect())
        });
        let action = action.to_string();
        if DENIED_CODES.contains(&code.as_str()) {
            return Ok(Attempt::Fail(Error::AccessDenied { action, code, message }));
        }
        let throttled = THROTTLING_CODES.contains(&code.as_str()) || reply.status == 503;
        let transient = TRANSIENT_CODES.contains(&code.as_str())
            || (reply.status >= 500 && !CAPACITY_CODES.contains(&code.as_str()));
        let hint = hint(&code).to_string();
        let error = Error::Api { action, status: reply.status, code: code.clone(), message, hint };
        Ok(if throttled || transient {
            Attempt::Retry { code, throttled, error }
        } else {
            Attempt::Fail(error)
        })
    }

    /// DescribeInstances with `filters`, following `NextToken` to the last page. `page_size` is
    /// sent as `MaxResults` (EC2 accepts 5 to 1000).
    pub fn describe_instances(
        &self,
        filters: &[Filter],
        page_size: Option<u32>,
    ) -> Result<Vec<Instance>> {
        let mut base = filter_params(filters);
        if let Some(size) = page_size {
            base.push(("MaxResults".into(), size.to_string()));
        }
        let mut instances = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = base.clone();
            if let Some(t) = &token {
                params.push(("NextToken".into(), t.clone()));
            }
            let body = self.call("DescribeInstances", &params)?;
            let page = xml::instances_page(&body)
                .map_err(|reason| self.bad("DescribeInstances", reason))?;
            instances.extend(page.instances);
            match page.next_token {
                Some(next) if token.as_ref() == Some(&next) => {
                    return Err(self.bad("DescribeInstances", "NextToken repeats itself".into()))
                }
                Some(next) => token = Some(next),
                None => return Ok(instances),
            }
        }
        Err(self.bad("DescribeInstances", format!("more than {MAX_PAGES} pages")))
    }

    /// The processor counts of each of `types`, one DescribeInstanceTypes call per type.
    pub fn describe_instance_types(&self, types: &[String]) -> Result<BTreeMap<String, CpuInfo>> {
        let mut out = BTreeMap::new();
        for instance_type in types {
            let params = [("InstanceType.1".to_string(), instance_type.clone())];
            let body = self.call("DescribeInstanceTypes", &params)?;
            let described = xml::instance_types(&body)
                .map_err(|reason| self.bad("DescribeInstanceTypes", reason))?;
            // Keep only the type asked for, whatever else an endpoint may return.
            let info = described
                .into_iter()
                .find(|(name, _)| name == instance_type)
                .map(|(_, info)| info)
                .ok_or_else(|| Error::UnknownInstanceType(instance_type.clone()))?;
            out.insert(instance_type.clone(), info);
        }
        Ok(out)
    }

    fn bad(&self, action: &str, reason: String) -> Error {
        Error::BadResponse { action: action.to_string(), endpoint: self.endpoint.clone(), reason }
    }
}

/// `Filter.N.Name` / `Filter.N.Value.M` parameters.
pub fn filter_params(filters: &[Filter]) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        params.push((format!("Filter.{}.Name", i + 1), filter.name.clone()));
        for (j, value) in filter.values.iter().enumerate() {
            params.push((format!("Filter.{}.Value.{}", i + 1, j + 1), value.clone()));
        }
    }
    params
}

/// A hint for error codes whose cause is usually on the caller's side.
fn hint(code: &str) -> &'static str {
    match code {
        "AuthFailure" | "InvalidClientTokenId" | "UnrecognizedClientException" => {
            " (the credentials were not accepted: check the access key id)"
        }
        "SignatureDoesNotMatch" => " (check the secret access key)",
        "ExpiredToken" | "RequestExpired" => {
            " (the session token has expired or the clock is off: refresh the credentials)"
        }
        "OptInRequired" => " (the account is not subscribed to EC2 in this region)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_precedence() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:2"),
        ]);
        assert_eq!(endpoint_url(Some("http://h:3"), &env, "us-east-1"), "http://h:3");
        assert_eq!(endpoint_url(None, &env, "us-east-1"), "http://127.0.0.1:2");
        let env = Env::from_pairs([("AWS_ENDPOINT_URL", "http://127.0.0.1:1")]);
        assert_eq!(endpoint_url(None, &env, "us-east-1"), "http://127.0.0.1:1");
        assert_eq!(
            endpoint_url(None, &Env::default(), "eu-west-3"),
            "https://ec2.eu-west-3.amazonaws.com/"
        );
        assert_eq!(
            endpoint_url(None, &Env::default(), "cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let creds =
            Credentials::new("AKIDSHOWN", "secret-hidden", Some("token-hidden".into()), None, "t");
        let client = Client::new("http://127.0.0.1:5000", "us-east-1", creds).unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("AKIDSHOWN") && shown.contains("127.0.0.1:5000"), "{shown}");
        assert!(!shown.contains("secret-hidden") && !shown.contains("token-hidden"), "{shown}");
    }

    #[test]
    fn endpoint_validation() {
        let creds = Credentials::new("a", "b", None, None, "test");
        let client = Client::new("http://127.0.0.1:5000", "us-east-1", creds.clone()).unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:5000/");
        for bad in ["127.0.0.1:5000", "http://", "https:///x", "http://h/?a=b"] {
            assert!(Client::new(bad, "us-east-1", creds.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_become_numbered_params() {
        let filters = [
            Filter { name: "tag:Cluster".into(), values: vec!["demo".into()] },
            Filter {
                name: "instance-state-name".into(),
                values: vec!["pending".into(), "running".into()],
            },
        ];
        let params = filter_params(&filters);
        let expected = [
            ("Filter.1.Name", "tag:Cluster"),
            ("Filter.1.Value.1", "demo"),
            ("Filter.2.Name", "instance-state-name"),
            ("Filter.2.Value.1", "pending"),
            ("Filter.2.Value.2", "running"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(params, expected);
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d0 = policy.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100), "{d0:?}");
            let d3 = policy.delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800), "{d3:?}");
            let d9 = policy.delay(9);
            assert!(
                d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000),
                "{d9:?}"
            );
        }
        let samples: std::collections::HashSet<Duration> =
            (0..20).map(|_| policy.delay(5)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
