//! Rego policies: compile once, evaluate `data.intentgate.policy.decision` many times.
//!
//! The same [`Policy::compile`] validates a draft in the control plane and loads it in the data
//! plane, so a draft that saves always loads. Compilation targets regorus' register VM (RVM);
//! the few constructs the RVM compiler does not support (`with`, some partial-object rules)
//! fall back to the tree-walking interpreter, with identical results and a higher cost.
//!
//! Failing closed (DESIGN invariant 3): an undefined result, a result of the wrong shape and
//! an evaluation error all become a deny whose reason says which.

use std::fmt;
use std::sync::Arc;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::{Engine, Value};

/// The rule every policy must define.
pub const ENTRYPOINT: &str = "data.intentgate.policy.decision";
/// Module name the policy is compiled under (appears in compile errors).
pub const MODULE_NAME: &str = "intentgate_policy.rego";
/// Instruction budget per evaluation: a runaway policy denies instead of stalling a core.
pub const MAX_INSTRUCTIONS: usize = 200_000;
/// Largest accepted policy source.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// The embedded default policy (COMPATIBILITY.md §5.2): default deny, read-only and routine tools
/// allowed, transfers capped at 10000 EUR, destructive tools denied.
pub const DEFAULT_POLICY: &str = include_str!("policy/default_policy.rego");

/// Which Rego syntax a module is parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    /// Rego v1 (OPA 1.x default): `if` and `contains` are required.
    #[default]
    V1,
    /// Rego v0, as the Go gateway parsed policies; `import rego.v1` still opts a module in.
    V0,
}

/// A syntax name that is neither `v1` nor `v0`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Rego syntax {0:?} (accepted: v1, v0)")]
pub struct UnknownSyntax(pub String);

impl std::str::FromStr for Syntax {
    type Err = UnknownSyntax;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(Self::V1),
            "v0" | "0" => Ok(Self::V0),
            other => Err(UnknownSyntax(other.to_owned())),
        }
    }
}

/// A policy that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The source is empty.
    #[error("policy source is empty")]
    Empty,
    /// The source is larger than [`MAX_SOURCE_BYTES`].
    #[error("policy source is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Parse or compile error, as regorus reports it (with line and column).
    #[error("policy does not compile: {0}")]
    Compile(String),
    /// The module compiles but does not define the decision rule.
    #[error("policy does not define {ENTRYPOINT} (package intentgate.policy, rule decision)")]
    NoDecisionRule,
}

impl PolicyError {
    /// The error on one line (`file:line:col: message` for a compile error), for startup
    /// errors and logs; the admin API keeps the full text with its source excerpt.
    pub fn one_line(&self) -> String {
        let Self::Compile(text) = self else {
            return self.to_string();
        };
        let at = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("-->"))
            .map(str::trim);
        let message = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("error:"))
            .map(str::trim);
        match (at, message) {
            (Some(at), Some(message)) => format!("policy does not compile: {at}: {message}"),
            _ => format!(
                "policy does not compile: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        }
    }
}

/// What a policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The call may proceed.
    pub allow: bool,
    /// Explanation, shown to the agent on deny and written to the audit log.
    pub reason: String,
    /// Hand the call to a human approver.
    pub escalate: bool,
    /// Advisory: step-up authentication is required.
    pub requires_step_up: bool,
    /// The policy failed (no decision, a malformed one, an evaluation error): denied with
    /// the problem as the reason.
    pub error: bool,
}

/// Why an evaluation produced no value; the decision then denies, naming it.
#[derive(Debug, thiserror::Error)]
enum EvalError {
    /// The register VM failed.
    #[error("{0}")]
    Vm(#[from] regorus::rvm::vm::VmError),
    /// The interpreter failed (regorus reports it as an opaque error).
    #[error("{0}")]
    Interpreter(Box<dyn std::error::Error + Send + Sync>),
}

impl Decision {
    fn deny(reason: impl Into<String>) -> Self {
        Self {
            allow: false,
            reason: reason.into(),
            escalate: false,
            requires_step_up: false,
            error: true,
        }
    }
}

enum Backend {
    /// The register VM, plus the interpreter to explain an undefined VM result (the VM
    /// reports conflicting rule values and runtime errors as undefined).
    Vm(Arc<Program>, Box<Engine>),
    Interpreter(Box<Engine>),
}

/// A compiled policy: immutable, cheap to share across threads; each thread evaluates through
/// its own [`Evaluator`].
#[derive(Clone)]
pub struct Policy {
    backend: Arc<Backend>,
    /// The policy reads `input.method`, `input.params` or `input.phase`: it decides every
    /// MCP method and every list entry. One that reads none of them (every Go-gateway
    /// policy) was written for `tools/call` alone and is consulted for it only
    /// (COMPATIBILITY.md "Different on purpose").
    governs_methods: bool,
    /// The policy reads `input.params`: only then is it built for a `tools/call` (it repeats
    /// `input.tool` and `input.args`, and building it costs every call).
    reads_params: bool,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match *self.backend {
            Backend::Vm(..) => "vm",
            Backend::Interpreter(_) => "interpreter",
        };
        f.debug_struct("Policy")
            .field("backend", &kind)
            .field("governs_methods", &self.governs_methods)
            .finish()
    }
}

fn compile_error(e: impl fmt::Display) -> PolicyError {
    PolicyError::Compile(e.to_string())
}

impl Policy {
    /// Parses and compiles `source`.
    pub fn compile(source: &str, syntax: Syntax) -> Result<Self, PolicyError> {
        if source.trim().is_empty() {
            return Err(PolicyError::Empty);
        }
        if source.len() > MAX_SOURCE_BYTES {
            return Err(PolicyError::TooLarge {
                len: source.len(),
                max: MAX_SOURCE_BYTES,
            });
        }
        let mut engine = Engine::new();
        engine.set_rego_v0(syntax == Syntax::V0);
        engine
            .add_policy(MODULE_NAME.to_owned(), source.to_owned())
            .map_err(compile_error)?;
        let compiled = engine
            .compile_with_entrypoint(&regorus::Rc::from(ENTRYPOINT))
            .map_err(|e| match e.to_string() {
                m if m.contains("not a valid rule path") || m.contains("not found") => {
                    PolicyError::NoDecisionRule
                }
                m => PolicyError::Compile(m),
            })?;
        let backend = match Compiler::compile_from_policy(&compiled, &[ENTRYPOINT]) {
            Ok(program) => Backend::Vm(program, Box::new(engine)),
            Err(_) => {
                // Prove the interpreter can evaluate the rule at all before accepting it.
                let mut probe = engine.clone();
                probe.set_input(Value::new_object());
                probe
                    .eval_rule(ENTRYPOINT.to_owned())
                    .map_err(compile_error)?;
                Backend::Interpreter(Box::new(engine))
            }
        };
        Ok(Self {
            backend: Arc::new(backend),
            governs_methods: reads_method_input(source, &["method", "params", "phase"]),
            reads_params: reads_method_input(source, &["params"]),
        })
    }

    /// True when the policy decides every MCP method and list entry, not only `tools/call`
    /// (it reads `input.method`, `input.params` or `input.phase`).
    pub fn governs_methods(&self) -> bool {
        self.governs_methods
    }

    /// True when the policy reads `input.params`.
    pub fn reads_params(&self) -> bool {
        self.reads_params
    }

    /// Identity of the compiled policy (stable across clones): per-core evaluator caches key on it.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.backend) as usize
    }

    /// The embedded default policy.
    pub fn default_policy() -> Result<Self, PolicyError> {
        Self::compile(DEFAULT_POLICY, Syntax::V1)
    }

    /// True when the policy runs on the register VM (the fast path).
    pub fn uses_vm(&self) -> bool {
        matches!(*self.backend, Backend::Vm(..))
    }

    /// A per-thread evaluator.
    pub fn evaluator(&self) -> Evaluator {
        let state = match &*self.backend {
            Backend::Vm(program, _) => {
                let mut vm = RegoVM::new();
                vm.load_program(Arc::clone(program));
                vm.set_max_instructions(MAX_INSTRUCTIONS);
                State::Vm(Box::new(vm))
            }
            Backend::Interpreter(engine) => State::Interpreter(engine.clone()),
        };
        Evaluator {
            state,
            policy: self.clone(),
            explainer: None,
        }
    }
}

enum State {
    Vm(Box<RegoVM>),
    Interpreter(Box<Engine>),
}

/// Evaluates one policy on one thread; reuse it for every call.
pub struct Evaluator {
    state: State,
    policy: Policy,
    /// Interpreter clone, made the first time a VM result needs explaining.
    explainer: Option<Box<Engine>>,
}

impl fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Evaluator")
    }
}

impl Evaluator {
    /// Evaluates the decision rule on `input`. Never fails: problems deny with a reason.
    pub fn evaluate(&mut self, input: Value) -> Decision {
        let result = match &mut self.state {
            State::Vm(vm) => {
                // Values are reference-counted: keeping a copy for the explainer is cheap.
                vm.set_input(input.clone());
                match vm.execute() {
                    Ok(Value::Undefined) => self.explain_undefined(input),
                    other => other.map_err(EvalError::Vm),
                }
            }
            State::Interpreter(engine) => {
                engine.set_input(input);
                engine
                    .eval_rule(ENTRYPOINT.to_owned())
                    .map_err(|e| EvalError::Interpreter(e.into()))
            }
        };
        match result {
            Ok(value) => decision_from(&value),
            Err(e) => Decision::deny(format!("policy evaluation error: {e}")),
        }
    }
}

impl Evaluator {
    /// Re-runs an undefined VM result on the interpreter, which names the actual problem
    /// (e.g. "complete rules should not produce multiple outputs") instead of "undefined".
    fn explain_undefined(&mut self, input: Value) -> Result<Value, EvalError> {
        let engine = match (&mut self.explainer, &*self.policy.backend) {
            (Some(e), _) => e,
            (slot @ None, Backend::Vm(_, engine)) => slot.insert(engine.clone()),
            (None, Backend::Interpreter(_)) => return Ok(Value::Undefined),
        };
        engine.set_input(input);
        engine
            .eval_rule(ENTRYPOINT.to_owned())
            .map_err(|e| EvalError::Interpreter(e.into()))
    }
}

const SHAPE: &str = "policy decision must be an object with a boolean allow";

fn decision_from(value: &Value) -> Decision {
    if *value == Value::Undefined {
        return Decision::deny("policy returned no decision (undefined)");
    }
    let Ok(obj) = value.as_object() else {
        return Decision::deny(SHAPE);
    };
    let field = |name: &str| obj.get(&Value::from(name));
    let Some(Value::Bool(allow)) = field("allow") else {
        return Decision::deny(SHAPE);
    };
    let reason = match field("reason") {
        None => String::new(),
        Some(Value::String(s)) => s.to_string(),
        Some(_) => return Decision::deny("policy decision reason must be a string"),
    };
    let flag = |name: &str, wrong: &'static str| match field(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(wrong),
    };
    match (
        flag("escalate", "policy decision escalate must be a boolean"),
        flag(
            "requires_step_up",
            "policy decision requires_step_up must be a boolean",
        ),
    ) {
        (Ok(escalate), Ok(requires_step_up)) => Decision {
            allow: *allow,
            reason,
            escalate,
            requires_step_up,
            error: false,
        },
        (Err(e), _) | (_, Err(e)) => Decision::deny(e),
    }
}

/// `input.capability` (COMPATIBILITY.md §5.2). Built once per verified token and reused: regorus values
/// are reference-counted, so attaching it to each call's input is a pointer copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityInput {
    /// Token subject.
    pub subject: String,
    /// Token issuer.
    pub issuer: String,
    /// Token tenant.
    pub tenant: String,
    /// Latest `step_up_at`, 0 when none.
    pub step_up_at: i64,
}

/// `input.intent`, when the extractor ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntentInput {
    /// Summary.
    pub summary: String,
    /// Tools the intent allows.
    pub allowed_tools: Vec<String>,
    /// Tools the intent forbids.
    pub forbidden_tools: Vec<String>,
    /// Extractor confidence.
    pub confidence: f64,
}

/// `input.agent`: the caller's recent call counts, so policies can rate-limit
/// (`input.agent.calls_today_for_tool < 50`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentInput {
    /// Agent id.
    pub id: String,
    /// Calls by this agent today.
    pub calls_today: u64,
    /// Calls of this tool by this agent today.
    pub calls_today_for_tool: u64,
    /// Calls by this agent this hour.
    pub calls_this_hour: u64,
}

struct ObjectBuilder(Value);

impl ObjectBuilder {
    fn new() -> Self {
        Self(Value::new_object())
    }
    fn set(&mut self, key: &str, v: Value) {
        if let Ok(obj) = self.0.as_object_mut() {
            obj.insert(Value::from(key), v);
        }
    }
    fn set_str(&mut self, key: &str, v: &str) {
        if !v.is_empty() {
            self.set(key, Value::from(v));
        }
    }
    fn set_list(&mut self, key: &str, v: &[String]) {
        if !v.is_empty() {
            self.set(
                key,
                Value::from(
                    v.iter()
                        .map(|s| Value::from(s.as_str()))
                        .collect::<Vec<_>>(),
                ),
            );
        }
    }
}

impl CapabilityInput {
    /// As a regorus value; empty fields omitted (Go `omitempty`).
    pub fn to_value(&self) -> Value {
        let mut o = ObjectBuilder::new();
        o.set_str("subject", &self.subject);
        o.set_str("issuer", &self.issuer);
        o.set_str("tenant", &self.tenant);
        if self.step_up_at != 0 {
            o.set("step_up_at", Value::from(self.step_up_at));
        }
        o.0
    }
}

impl IntentInput {
    /// As a regorus value; empty fields omitted.
    pub fn to_value(&self) -> Value {
        let mut o = ObjectBuilder::new();
        o.set_str("summary", &self.summary);
        o.set_list("allowed_tools", &self.allowed_tools);
        o.set_list("forbidden_tools", &self.forbidden_tools);
        if self.confidence != 0.0 {
            o.set("confidence", Value::from(self.confidence));
        }
        o.0
    }
}

impl AgentInput {
    /// As a regorus value (counts always present).
    pub fn to_value(&self) -> Value {
        let mut o = ObjectBuilder::new();
        o.set("id", Value::from(self.id.as_str()));
        o.set("calls_today", Value::from(self.calls_today));
        o.set(
            "calls_today_for_tool",
            Value::from(self.calls_today_for_tool),
        );
        o.set("calls_this_hour", Value::from(self.calls_this_hour));
        o.0
    }
}

/// The input document of one decision (COMPATIBILITY.md §5.2). Sub-objects are pre-built values so a
/// caller can cache them.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// Tool name: present for `tools/call` and for `tools/list` entries, omitted otherwise.
    pub tool: &'a str,
    /// The JSON-RPC method (`tools/call`, `resources/read`...); for a list entry, the
    /// method that would use it (`tools/call`, `prompts/get`, `resources/read`).
    pub method: &'a str,
    /// `params` of the request (for a list entry: `{name}`, `{uri}` or `{uriTemplate}`).
    pub params: Option<Value>,
    /// `call` for a request, `list` for an entry of a list answer.
    pub phase: &'a str,
    /// Tool arguments (an object), omitted when `None`.
    pub args: Option<Value>,
    /// Agent id, omitted when empty.
    pub agent_id: &'a str,
    /// Session id, omitted when empty.
    pub session_id: &'a str,
    /// `intent` object.
    pub intent: Option<Value>,
    /// `capability` object.
    pub capability: Option<Value>,
    /// `agent` object.
    pub agent: Option<Value>,
}

impl Input<'_> {
    /// The input document.
    pub fn to_value(&self) -> Value {
        let mut o = ObjectBuilder::new();
        o.set_str("tool", self.tool);
        o.set_str("method", self.method);
        o.set_str("phase", self.phase);
        for (key, v) in [
            ("args", &self.args),
            ("params", &self.params),
            ("intent", &self.intent),
            ("capability", &self.capability),
            ("agent", &self.agent),
        ] {
            if let Some(v) = v {
                o.set(key, v.clone());
            }
        }
        o.set_str("agent_id", self.agent_id);
        o.set_str("session_id", self.session_id);
        o.0
    }
}

/// Whether Rego `source` reads any of the input `fields`, outside comments.
fn reads_method_input(source: &str, fields: &[&str]) -> bool {
    source.lines().any(|line| {
        let code = line.split('#').next().unwrap_or("");
        let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        fields.iter().any(|f| {
            squeezed.contains(&format!("input.{f}"))
                || squeezed.contains(&format!("input[\"{f}\"]"))
        })
    })
}

/// Tool arguments that are not JSON.
#[derive(Debug, thiserror::Error)]
#[error("arguments are not valid JSON: {0}")]
pub struct ArgsError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Parses tool arguments (JSON text) into a regorus value.
pub fn args_from_json(json: &str) -> Result<Value, ArgsError> {
    Value::from_json_str(json).map_err(|e| ArgsError(e.into()))
}

#[cfg(test)]
mod tests;
