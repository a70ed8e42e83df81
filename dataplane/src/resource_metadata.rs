//! OAuth 2.1 resource-server discovery for MCP clients (RFC 9728): the protected resource
//! metadata document at `/.well-known/oauth-protected-resource` (root and path-inserted), and
//! the `WWW-Authenticate` challenge a token-less MCP request gets with its 401, so standard
//! MCP clients find where to obtain a token.

use intentgate_shared::config::OAuthResource;

/// What the data plane serves for `INTENTGATE_OAUTH_*`.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// The metadata document.
    pub body: Vec<u8>,
    /// Paths it is served on.
    pub paths: Vec<String>,
    /// `WWW-Authenticate` value of the 401.
    pub challenge: String,
}

impl ResourceMetadata {
    /// From the configuration.
    pub fn new(c: &OAuthResource) -> Self {
        let (origin, path) = split_origin(&c.resource);
        let root = "/.well-known/oauth-protected-resource".to_owned();
        let inserted = format!("{root}{path}");
        let metadata_url = format!("{origin}{inserted}");
        let mut doc = serde_json::json!({
            "resource": c.resource,
            "authorization_servers": c.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !c.scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(c.scopes);
        }
        let mut challenge = format!("Bearer resource_metadata=\"{metadata_url}\"");
        if !c.scopes.is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", c.scopes.join(" ")));
        }
        let mut paths = vec![root];
        if !path.is_empty() {
            paths.push(inserted);
        }
        Self {
            body: doc.to_string().into_bytes(),
            paths,
            challenge,
        }
    }

    /// Whether `path` is one of the metadata paths.
    pub fn serves(&self, path: &[u8]) -> bool {
        self.paths.iter().any(|p| p.as_bytes() == path)
    }
}

/// `https://h:1/a/b` → (`https://h:1`, `/a/b`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_and_challenge_name_the_path_inserted_url() {
        let m = ResourceMetadata::new(&OAuthResource {
            resource: "https://gw.example:8443/v1/mcp".into(),
            authorization_servers: vec!["https://login.example".into()],
            scopes: vec!["mcp.tools".into(), "mcp.read".into()],
        });
        let doc: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(doc["resource"], "https://gw.example:8443/v1/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://login.example");
        assert_eq!(doc["scopes_supported"][1], "mcp.read");
        assert!(m.serves(b"/.well-known/oauth-protected-resource"));
        assert!(m.serves(b"/.well-known/oauth-protected-resource/v1/mcp"));
        assert!(!m.serves(b"/.well-known/oauth-protected-resource/other"));
        assert_eq!(
            m.challenge,
            "Bearer resource_metadata=\"https://gw.example:8443/.well-known/oauth-protected-resource/v1/mcp\", scope=\"mcp.tools mcp.read\""
        );
    }
}
