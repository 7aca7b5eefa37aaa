//! Gets a token, introspects it, fetches the JWKS, then lets a `TokenSource` do the same.
//!
//! Start a server with `cargo run -p moneykit-auth -- serve --demo`, then:
//!
//! ```sh
//! MONEYKIT_URL=http://127.0.0.1:8080 MONEYKIT_CLIENT_ID=live_… MONEYKIT_CLIENT_SECRET=mks_… \
//!   cargo run -p moneykit --example get_token
//! ```

use moneykit::{AccessTokenApi, Configuration, GenerateAccessTokenOpts, TokenSource};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("MONEYKIT_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let (client_id, client_secret) = (env("MONEYKIT_CLIENT_ID"), env("MONEYKIT_CLIENT_SECRET"));
    let config = Configuration::self_hosted(&host)?;

    // The seed's three operations, one by one.
    let api = AccessTokenApi::new(
        config
            .clone()
            .basic_auth(&client_id, client_secret.as_str()),
    )?;
    let (token, status, _headers) = api
        .generate_access_token_with_http_info(GenerateAccessTokenOpts::default())
        .await?;
    println!(
        "generate_access_token: HTTP {status}, {} token for {:?}, expires in {} s",
        token.token_type, token.scope, token.expires_in
    );

    let with_token = AccessTokenApi::new(config.clone().access_token(token.access_token))?;
    let me = with_token.instrospect_client().await?;
    println!(
        "instrospect_client: client {} ({:?}) of app {} ({:?}), disabled_at {:?}",
        me.client_id, me.client_name, me.app.app_id, me.app.app_name, me.disabled_at
    );

    let jwks = api.get_well_known_jwks().await?;
    let kids: Vec<_> = jwks.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    println!("get_well_known_jwks: {} key(s): {kids:?}", jwks.keys.len());

    // The same with a token source: no token handling at all.
    let tokens = TokenSource::new(config.clone(), &client_id, client_secret.as_str())?;
    let api = AccessTokenApi::new(config.clone())?.with_token_source(tokens);
    let me = api.introspect_client().await?;
    println!("with a TokenSource: introspect_client → {}", me.client_id);

    // And an error, as the SDK reports it.
    let wrong = AccessTokenApi::new(config.clone().basic_auth(&client_id, "wrong"))?;
    if let Err(e) = wrong.generate_access_token(Default::default()).await {
        println!("wrong secret: {e}");
    }
    Ok(())
}
