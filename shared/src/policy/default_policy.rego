# IntentGate default policy: deny unless a rule below matches.
#
# Input (see docs/POLICY.md): input.tool, input.args, input.agent_id, input.capability
# {subject, issuer, tenant, step_up_at}, input.intent {...}, input.agent {...}.
# Output: decision := {"allow": bool, "reason": string, "escalate"?: bool, "requires_step_up"?: bool}
package intentgate.policy

import rego.v1

destructive_tools := {"delete", "drop_table", "factory_reset", "purge_audit"}

routine_write_tools := {"record_in_ledger", "verify_vendor", "fetch_company_data", "web_search"}

transfer_limit_eur := 10000

default decision := {"allow": false, "reason": "no policy rule matched (default deny)"}

decision := {"allow": false, "reason": "destructive tool denied by default policy"} if {
	input.tool in destructive_tools
} else := {"allow": true, "reason": "read-only tool"} if {
	startswith(input.tool, "read_")
} else := {"allow": true, "reason": "routine write tool"} if {
	input.tool in routine_write_tools
} else := {"allow": true, "reason": "transfer within 10000 EUR threshold"} if {
	input.tool == "transfer_funds"
	to_number(input.args.amount_eur) <= transfer_limit_eur
} else := {"allow": false, "reason": "transfer above 10000 EUR threshold"} if {
	input.tool == "transfer_funds"
	to_number(input.args.amount_eur) > transfer_limit_eur
}
