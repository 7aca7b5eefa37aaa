//! The `moneykit-auth` binary: the server and the admin CLI. All wiring is in the library.

/// mimalloc instead of the system allocator: every request allocates a few dozen small
/// objects, and glibc's malloc showed up as ~12 % of the token endpoint's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    moneykit_auth::cli::run()
}
