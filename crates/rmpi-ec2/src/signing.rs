//! AWS Signature Version 4 for the EC2 Query API, done by the official `aws-sigv4` crate.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// What to sign.
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Full URL, including any query string.
    pub url: &'a str,
    /// Headers that are sent and must be signed (e.g. `content-type`); `host` is taken from
    /// the URL when absent.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Signs `request` for `service` in `region` at `time`, returning the headers to add:
/// `authorization`, `x-amz-date` and, with temporary credentials, `x-amz-security-token`.
///
/// Errors are plain text and never contain the secret key.
pub fn sign_v4(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) =
        sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

#[cfg(test)]
mod tests {
    //! Vectors from the AWS SigV4 test suite (`get-vanilla`, `post-x-www-form-urlencoded`), with
    //! the suite's credentials `AKIDEXAMPLE` and date 2015-08-30T12:36:00Z.
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn suite_credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    fn suite_time() -> SystemTime {
        // 2015-08-30T12:36:00Z
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[test]
    fn get_vanilla() {
        let request = Request {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &[],
            body: b"",
        };
        let headers =
            sign_v4(&request, &suite_credentials(None), "us-east-1", "service", suite_time())
                .unwrap();
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    #[test]
    fn post_form_urlencoded() {
        let request = Request {
            method: "POST",
            url: "https://example.amazonaws.com/",
            headers: &[("content-type", "application/x-www-form-urlencoded")],
            body: b"Param1=value1",
        };
        let headers =
            sign_v4(&request, &suite_credentials(None), "us-east-1", "service", suite_time())
                .unwrap();
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn session_token_is_sent_and_signed() {
        let request = Request {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &[],
            body: b"",
        };
        let headers = sign_v4(
            &request,
            &suite_credentials(Some("TOKEN123")),
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-security-token"), Some("TOKEN123"));
        let auth = header(&headers, "authorization").unwrap();
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"), "{auth}");
        assert!(!auth.contains("wJalrXUtnFEMI"), "{auth}");
    }
}
