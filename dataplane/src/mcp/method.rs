//! What a request other than `tools/call` names, for the caveats and the policy, and the
//! answer a refused prompt or resource gets: the one the MCP specification gives a missing
//! one, so that a refusal does not reveal what exists (the audit record keeps the reason).

use regorus::Value;

use intentgate_shared::gojson;
use intentgate_shared::token::Target;

use crate::jsonrpc::{self, RpcError, code};

/// `-32002`, "resource not found" of the revisions up to 2025-11-25 (2026-07-28 uses
/// `-32602`).
pub(crate) const RESOURCE_NOT_FOUND: i32 = -32002;

/// The prompt or resource a request names. Methods that name one must name it with a string
/// (`-32602` otherwise, before any decision).
pub(super) fn target_of<'a>(
    req: &jsonrpc::Request<'a>,
    params: Option<&'a Value>,
) -> Result<Target<'a>, RpcError> {
    let required = |what: &'static str| RpcError::new(code::INVALID_PARAMS, what);
    Ok(match req.method {
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Target::Resource(
            req.param_str("uri")
                .ok_or_else(|| required("params.uri is required"))?,
        ),
        "prompts/get" => Target::Prompt(
            req.param_str("name")
                .ok_or_else(|| required("params.name is required"))?,
        ),
        "completion/complete" => completion_target(params).ok_or_else(|| {
            required("params.ref must be a ref/prompt with a name or a ref/resource with a uri")
        })?,
        _ => Target::Nothing,
    })
}

/// `completion/complete` completes an argument of a prompt or a resource template.
fn completion_target(params: Option<&Value>) -> Option<Target<'_>> {
    let reference = &params?["ref"];
    let text = |key: &str| reference[key].as_string().ok().map(|s| s.as_ref());
    match text("type")? {
        "ref/prompt" => text("name").map(Target::Prompt),
        "ref/resource" => text("uri").map(|uri| {
            if uri.contains('{') {
                Target::ResourceTemplate(uri)
            } else {
                Target::Resource(uri)
            }
        }),
        _ => None,
    }
}

/// The error the specification gives a prompt or resource that does not exist.
pub(super) fn not_found(target: Target<'_>, modern: bool) -> RpcError {
    match target {
        Target::Prompt(name) => {
            RpcError::new(code::INVALID_PARAMS, format!("Unknown prompt: {name}"))
        }
        Target::Resource(uri) | Target::ResourceTemplate(uri) => {
            let mut data = Vec::with_capacity(uri.len() + 10);
            data.extend_from_slice(b"{\"uri\":");
            gojson::write_str(&mut data, uri);
            data.push(b'}');
            RpcError {
                code: if modern {
                    code::INVALID_PARAMS
                } else {
                    RESOURCE_NOT_FOUND
                },
                message: "Resource not found".into(),
                data: Some(data),
            }
        }
        Target::Tool(name) => RpcError::new(code::INVALID_PARAMS, format!("Unknown tool: {name}")),
        Target::Nothing => RpcError::new(code::METHOD_NOT_FOUND, "Method not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_take_the_specifications_not_found_shapes() {
        let mut out = Vec::new();
        jsonrpc::write_error(
            &mut out,
            Some(b"7"),
            &not_found(Target::Resource("file:///x"), false),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32002,"message":"Resource not found","data":{"uri":"file:///x"}}}"#
        );
        assert_eq!(not_found(Target::Resource("a"), true).code, -32602);
        assert_eq!(
            not_found(Target::Prompt("p"), false).message,
            "Unknown prompt: p"
        );
    }
}
