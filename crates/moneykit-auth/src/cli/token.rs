//! `moneykit-auth token`: get an access token from a running server, with the `moneykit`
//! SDK — the quickest way to check credentials from a shell.

use clap::Args;
use moneykit::{AccessTokenApi, Configuration, GenerateAccessTokenOpts};

use super::output::Output;

#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "MONEYKIT_AUTH_URL")]
    url: String,
    /// Client id.
    #[arg(long, env = "MONEYKIT_AUTH_CLIENT_ID")]
    client_id: String,
    /// Client secret (prefer the environment variable: arguments show up in `ps`).
    #[arg(long, env = "MONEYKIT_AUTH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Scopes to narrow the token to, space-separated [default: all the client may have].
    #[arg(long, env = "MONEYKIT_AUTH_SCOPE")]
    scope: Option<String>,
}

pub(super) async fn run(args: TokenArgs, out: Output) -> anyhow::Result<()> {
    let config = Configuration::self_hosted(&args.url)
        .map_err(|e| anyhow::anyhow!("--url: {e}"))?
        .basic_auth(&args.client_id, args.client_secret.as_str());
    let api = AccessTokenApi::new(config)?;
    let opts = GenerateAccessTokenOpts {
        grant_type: Some("client_credentials".into()),
        scope: args.scope,
        ..Default::default()
    };
    let token = api.generate_access_token(opts).await?;
    let value = serde_json::json!({
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_in": token.expires_in,
        "scope": token.scope,
    });
    out.emit(&value, || {
        format!(
            "access_token: {}\ntoken_type:   {}\nexpires_in:   {}\nscope:        {}",
            token.access_token, token.token_type, token.expires_in, token.scope
        )
    });
    Ok(())
}
