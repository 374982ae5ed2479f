//! # jwt-authn-wasm
//!
//! JWT authentication for Envoy and Istio as a proxy-wasm HTTP filter, configured with Envoy
//! `jwt_authn`'s JSON.
//!
//! ## Design
//! A sans-I/O core and one thin host module. Everything that decides anything is plain Rust
//! that runs and is tested natively; only `wasm` (compiled for `wasm32` alone) calls
//! `proxy_wasm`. Between them is the host seam (`host::Host`): one plugin instance of one VM
//! (`filter::Filter`: configure, tick, a request's headers, a callout's response, a stream
//! gone) talks to the proxy only through it, so the whole instance (fetches, the fleet
//! protocol, parked streams, metrics, the timer) runs natively against `host::fake::FakeHost`;
//! `wasm` implements the trait with raw host calls and hands each event to the instance,
//! which it holds in a `slot::Slot` (lent out for each event; tested natively too).
//!
//! Request flow (`engine::decide`): strip every header the filter can emit → CORS preflight
//! bypass → first matching rule (`matcher`) → requirement tree (`authorize`) → for each token
//! at the provider's locations (`extract`): parse (`jwt`), issuer, signature with keys the
//! provider chose (`jwks`), claims (`verify`) → the provider's revocation list, if it has one
//! (`revocation`, through `keys::KeyStore::revocation`) → required scopes and claims (`scopes`,
//! `claims`) → identity headers (`propagate`) → allow, or deny through the one failure-to-HTTP
//! mapping (`error::deny`), as the failure policy of the failure's class says; `report_only`
//! allows everything and tells the upstream the outcome. Every decision carries a verdict
//! (reason, provider) that the instance counts (`metrics`).
//!
//! Speed: RS* and ES* signatures go to the host's native crypto where it has it, behind the
//! `signature::SignatureBackend` seam (the core stays testable natively); verified tokens are
//! kept per provider (`token_cache`), so a token seen again is neither parsed nor checked again.
//!
//! ## Trust boundary
//! Client bytes (headers, tokens, query strings) are untrusted until a signature verifies:
//! header values stay bytes, a token's `alg` is compared with what the key allows and never
//! obeyed, and the only claim read before the signature is `iss`, to route the token to a
//! provider. Trust is a type: `verify::verify` returns a `verify::Verified` token, which no
//! other module can make (private fields, no public constructor), and everything that reads
//! claims to decide or to tell the upstream takes one: the verified-token cache
//! (`token_cache`), required scopes and claims (`scopes`, `claims`), token kinds and `typ`
//! (`token_kind`), identity headers and filter state (`propagate`), certificate binding
//! (`binding`) and the revocation check (`revocation`). A cached token is checked
//! again on every request, all but its signature (`verify::recheck`).
//! Configuration is trusted but validated completely at load.
//! Shared data is not trusted either: every module with the same `vm_id` can write it, so the
//! records the VMs of one Envoy share for a remote resource (`resource::Resource`: a key set,
//! a revocation list) are bounded by the provider's own policy before they are believed
//! (`jwks_cache`, `revocation::fetch`; a signed list is verified by the adopting VM, an older
//! list never taken), and `share_key_sets: false` turns sharing off. The protocol over those
//! records (lease, version, adoption) is `fleet`, one per kind of resource, behind its
//! `SharedData` trait, so it runs natively against several fake VMs.
//! What a key-set or list callout leads to (OIDC discovery, a reset, backoff with last good,
//! publishing) is `callouts`; `filter` sends its requests and hands it the raw response.
//! Which paused stream waits for which provider, and the decide loop that parks a request or
//! gives it a final answer, is `parked`; `filter` resumes the streams it names. The instance gets
//! only final decisions (`engine::Final`: allow or deny); a `Wait` never leaves the core.
//!
//! ## Clock
//! Time comes from the host (`proxy_get_current_time_nanoseconds`) as a parameter of
//! `engine::decide`; nothing reads the system clock. A request is first offered to
//! `engine::decide_open`, which decides only what no time can change (unreadable, a CORS
//! preflight let through, no rule or one without `requires`), so a route that needs no token
//! reads no clock; a token is always checked at the host's time, never at 0.
//!
//! ## Panics
//! A panic kills the VM (fail-closed: the service is down; fail-open: everyone gets in).
//! `unwrap`, `expect`, `panic!`, unchecked indexing and string slicing are denied in `src/` by
//! lint; host data is parsed here, not by the SDK's panicking helpers (`pairs`); and should a
//! dependency panic anyway, the hook logs one critical line first (`crash`).
//!
//! ## Modules by role
//! - Configuration: `config` (serde shape `config::raw` → `config::compile` → one immutable
//!   `Config`; the OAuth client blocks share `config::oauth_client` and `config::secret`).
//! - The request path, pure: `engine` over `request`, `pairs`, `matcher`, `extract`, `jwt`,
//!   `jwks`, `signature`, `rsa_pkcs1`, `verify`, `keys`, `authorize` (with `scopes`, `claims`,
//!   `token_kind`, `peer`, `binding`, `claim_path`), `propagate`; `error` maps failures to HTTP;
//!   `token_cache` keeps verified tokens; `trace` and `explain` tell the steps.
//! - The host seam and the instance: `host` (and `host::fake`), `filter` (with `filter::opaque`
//!   and `filter::exchange`), `parked`, `metrics`, `logline`, `crash`; `wasm` is the glue.
//! - Remote resources (fetched, refreshed, backed off, last good, shared by the VMs of one
//!   Envoy): key sets (`jwks_cache`), revocation lists (`revocation`, `revocation::fetch`),
//!   through `fleet` (between the VMs) and `callouts` (the callouts and their answers).
//! - Per-token lookups (`lookup`: keyed by a hash, single-flight, bounded, positive and negative
//!   lifetimes): introspection answers (`introspection`, `introspection::cache`) and exchanged
//!   tokens (`exchange`); `oauth` builds their requests and reads their answers. Introspection
//!   answers reach a decision through the decide loop (`parked::Deciding::answers`), and the
//!   lookups a decision needs come back from it, as a key `Wait` does; an exchange runs after
//!   an allowed decision (`filter::exchange`).
// Tests may panic: that is how they fail. Their tables are tuples, one row per case.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::type_complexity
    )
)]

pub mod authorize;
pub mod binding;
pub mod callouts;
pub mod claim_path;
pub mod claims;
pub mod config;
pub mod crash;
pub mod engine;
pub mod error;
pub mod exchange;
#[cfg(feature = "explain")]
pub mod explain;
pub mod extract;
pub mod filter;
pub mod fleet;
pub mod host;
pub mod introspection;
pub mod jwks;
pub mod jwks_cache;
pub mod jwt;
pub mod keys;
pub mod logline;
pub mod lookup;
pub mod matcher;
pub mod metrics;
pub mod oauth;
pub mod pairs;
pub mod parked;
pub mod peer;
pub mod propagate;
pub mod request;
pub mod resource;
pub mod revocation;
pub mod rsa_pkcs1;
pub mod scopes;
pub mod signature;
pub mod slot;
pub mod token_cache;
pub mod token_kind;
pub mod trace;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// The test-only token signer, shared with the end-to-end tests.
#[cfg(test)]
#[path = "../tests/common/mint.rs"]
pub(crate) mod mint;
