//! The `moneykit-auth` binary: the server and the admin CLI. All wiring is in the library.

fn main() -> std::process::ExitCode {
    moneykit_auth::cli::run()
}
