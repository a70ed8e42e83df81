//! AWS Signature Version 4 for the S3 forwarder: the canonical request, the string to sign
//! and the derived signing key, as AWS documents them. Checked against AWS's published
//! examples in the tests below.

use ring::{digest, hmac};

/// What a request is signed over.
#[derive(Debug)]
pub struct Request<'a> {
    /// `PUT`, `GET`, ...
    pub method: &'a str,
    /// The path, each segment already URI-encoded (`/bucket/a%3Db`).
    pub canonical_uri: &'a str,
    /// The canonical query string ("" for none).
    pub canonical_query: &'a str,
    /// Signed headers: lowercase names, trimmed values (`host` included).
    pub headers: &'a [(&'a str, String)],
    /// Hex SHA-256 of the body (`x-amz-content-sha256`).
    pub payload_sha256: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    /// Region.
    pub region: &'a str,
    /// Service (`s3`).
    pub service: &'a str,
}

/// Credentials to sign with.
#[derive(Debug)]
pub struct Credentials<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

/// RFC 3986 encoding of one path segment, as S3 expects (unreserved characters kept).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `Authorization` header value.
pub fn authorization(req: &Request<'_>, creds: &Credentials<'_>) -> String {
    let mut headers: Vec<&(&str, String)> = req.headers.iter().collect();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    let signed = signed.join(";");
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        req.method, req.canonical_uri, req.canonical_query
    );
    for (name, value) in &headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value.trim());
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed);
    canonical.push('\n');
    canonical.push_str(req.payload_sha256);
    let date = &req.amz_date[..8.min(req.amz_date.len())];
    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        req.amz_date,
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, req.region.as_bytes());
    let k_service = hmac(&k_region, req.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// `get-vanilla` of AWS's Signature Version 4 test suite.
    #[test]
    fn the_aws_test_suite_get_vanilla_signature_matches() {
        let auth = authorization(
            &Request {
                method: "GET",
                canonical_uri: "/",
                canonical_query: "",
                headers: &[
                    ("host", "example.amazonaws.com".into()),
                    ("x-amz-date", "20150830T123600Z".into()),
                ],
                payload_sha256: EMPTY,
                amz_date: "20150830T123600Z",
                region: "us-east-1",
                service: "service",
            },
            &Credentials {
                access_key_id: "AKIDEXAMPLE",
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// The "GET Object" example of the S3 API reference (header-based authentication).
    #[test]
    fn the_s3_documentation_get_object_signature_matches() {
        let auth = authorization(
            &Request {
                method: "GET",
                canonical_uri: "/test.txt",
                canonical_query: "",
                headers: &[
                    ("x-amz-date", "20130524T000000Z".into()),
                    ("range", "bytes=0-9".into()),
                    ("host", "examplebucket.s3.amazonaws.com".into()),
                    ("x-amz-content-sha256", EMPTY.into()),
                ],
                payload_sha256: EMPTY,
                amz_date: "20130524T000000Z",
                region: "us-east-1",
                service: "s3",
            },
            &Credentials {
                access_key_id: "AKIAIOSFODNN7EXAMPLE",
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
        );
        assert!(
            auth.ends_with(
                "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
                 Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            ),
            "{auth}"
        );
    }

    #[test]
    fn path_segments_keep_unreserved_characters_only() {
        assert_eq!(encode_segment("year=2026"), "year%3D2026");
        assert_eq!(encode_segment("gw-1_a.b~"), "gw-1_a.b~");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
