# IntentGate default policy: deny unless a rule below matches.
#
# Input (see docs/POLICY.md): input.method, input.params, input.phase ("call" or "list"),
# and for tools/call input.tool, input.args; input.agent_id, input.capability
# {subject, issuer, tenant, step_up_at}, input.intent {...}, input.agent {...}.
# Output: decision := {"allow": bool, "reason": string, "escalate"?: bool, "requires_step_up"?: bool}
package intentgate.policy

import rego.v1

destructive_tools := {"delete", "drop_table", "factory_reset", "purge_audit"}

routine_write_tools := {"record_in_ledger", "verify_vendor", "fetch_company_data", "web_search"}

transfer_limit_eur := 10000

# Methods that carry no authority of their own: the handshake, liveness, cancellation and
# progress, the caller's own tasks, and the log level of its session.
session_methods := {
	"initialize", "notifications/initialized", "ping", "server/discover",
	"notifications/cancelled", "notifications/progress", "notifications/roots/list_changed",
	"logging/setLevel", "tasks/get", "tasks/list", "tasks/result", "tasks/cancel",
}

# List requests: their answers are filtered entry by entry (input.phase == "list").
list_methods := {"tools/list", "prompts/list", "resources/list", "resources/templates/list"}

# Reading: resources, their change notifications, prompts and argument completion.
read_methods := {
	"resources/read", "resources/subscribe", "resources/unsubscribe",
	"subscriptions/listen", "prompts/get", "completion/complete",
}

# A tool call, or a tools/list entry (method "tools/call", phase "list"). Inputs without a
# method (the Go gateway's, dry runs of old audit rows) are tool calls.
tool_call if not input.method

tool_call if input.method == "tools/call"

default decision := {"allow": false, "reason": "no policy rule matched (default deny)"}

decision := {"allow": false, "reason": "destructive tool denied by default policy"} if {
	tool_call
	input.tool in destructive_tools
} else := {"allow": true, "reason": "read-only tool"} if {
	tool_call
	startswith(input.tool, "read_")
} else := {"allow": true, "reason": "routine write tool"} if {
	tool_call
	input.tool in routine_write_tools
} else := {"allow": true, "reason": "transfers are listed; each call is capped at 10000 EUR"} if {
	tool_call
	input.phase == "list"
	input.tool == "transfer_funds"
} else := {"allow": true, "reason": "transfer within 10000 EUR threshold"} if {
	tool_call
	input.tool == "transfer_funds"
	to_number(input.args.amount_eur) <= transfer_limit_eur
} else := {"allow": false, "reason": "transfer above 10000 EUR threshold"} if {
	tool_call
	input.tool == "transfer_funds"
	to_number(input.args.amount_eur) > transfer_limit_eur
} else := {"allow": true, "reason": "session method"} if {
	input.method in session_methods
} else := {"allow": true, "reason": "list request (entries are filtered one by one)"} if {
	input.method in list_methods
} else := {"allow": true, "reason": "read method"} if {
	input.method in read_methods
}
