# The runbook's "minimum viable policy", used by `intentgate dev`.
package intentgate.policy

import rego.v1

default decision := {"allow": false, "reason": "denied by default"}

# Allow the read_invoice tool unconditionally.
decision := {"allow": true, "reason": "read-only invoice access"} if {
	input.tool == "read_invoice"
}

# Allow internal email under a budget, escalate above it.
decision := {"allow": true, "reason": "internal email under daily quota"} if {
	input.tool == "send_email_internal"
	input.agent.calls_today_for_tool < 50
}

decision := {
	"allow": false,
	"escalate": true,
	"reason": "internal email over daily quota - review",
	"requires_step_up": true,
} if {
	input.tool == "send_email_internal"
	input.agent.calls_today_for_tool >= 50
}
