//! SigV4 for a Query API request, by AWS's own signer (`aws-sigv4`): the headers to add to a
//! POST of a form body to the endpoint, for the service `ec2` in the region.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use osprey_sdk::prelude::*;
use std::time::SystemTime;

/// The content type of every request: a form body.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// An access key pair, and the session token of temporary credentials.
pub(crate) struct Keys {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
}

/// The headers that sign `POST url` with `body` at `time`: `content-type` (signed too),
/// `x-amz-date`, `authorization` and, with temporary credentials, `x-amz-security-token`.
/// The host header is signed as the URL's authority, which is what the HTTP client sends.
pub(crate) fn signed_headers(
    keys: &Keys,
    region: &str,
    url: &str,
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>> {
    let identity = Credentials::new(
        keys.access_key_id.as_str(),
        keys.secret_access_key.as_str(),
        keys.session_token.clone(),
        None,
        "osprey-secrets",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("ec2")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::internal(format!("SigV4 parameters: {e}")))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        [("content-type", FORM)].into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| Error::invalid_input(format!("cannot sign a request to {url}: {e}")))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| Error::internal(format!("SigV4 signing failed: {e}")))?
        .into_parts();
    let mut headers = vec![("content-type".to_owned(), FORM.to_owned())];
    headers.extend(
        instructions
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned())),
    );
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(session_token: Option<&str>) -> Keys {
        // AWS's documented example key pair.
        Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_request_is_signed_for_ec2_in_the_region_with_host_type_and_date() {
        // 2015-08-30T12:36:00Z, the date of AWS's SigV4 test suite.
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let body = b"Action=DescribeInstances&Version=2016-11-15";
        let url = "https://ec2.us-east-1.amazonaws.com/";
        let headers = signed_headers(&keys(None), "us-east-1", url, body, at).unwrap();
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(header(&headers, "content-type"), Some(FORM));
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert!(!auth.contains("EXAMPLEKEY"), "the secret is never sent");
        assert_eq!(header(&headers, "x-amz-security-token"), None);
        // The signature covers the body: another body, another signature.
        let other = signed_headers(&keys(None), "us-east-1", url, b"Action=X", at).unwrap();
        assert_ne!(header(&other, "authorization"), Some(auth));
    }

    #[test]
    fn temporary_credentials_send_and_sign_their_session_token() {
        let headers = signed_headers(
            &keys(Some("FwoGZXIvYXdzEXAMPLE")),
            "eu-west-1",
            "http://127.0.0.1:9000/",
            b"",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(
            header(&headers, "x-amz-security-token"),
            Some("FwoGZXIvYXdzEXAMPLE")
        );
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.contains("/eu-west-1/ec2/aws4_request")
                && auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
    }
}
