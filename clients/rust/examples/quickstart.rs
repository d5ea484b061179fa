//! Connects to a running `semkvd` (at `$SEMKV_ADDR`, else 127.0.0.1:50051), creates a
//! cluster, appends a turn, and streams a generation on it.
//!
//! ```text
//! semkvd --model gemma-3-270m &
//! cargo run -p semkv-client --example quickstart
//! ```

use std::io::Write;

use semkv_client::{proto, Client, GenerateEvent, Labels, DEFAULT_ADDR};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("SEMKV_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let client = Client::connect(&addr).await?;
    let info = client.server_info().await?;
    println!(
        "semkvd {} at {} serving {}",
        info.version,
        client.addr(),
        info.model
    );

    // A fresh cluster (the id is free again after a previous run).
    let id = "quickstart";
    match client.delete_cluster(id).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(semkv_client::Code::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let labels = Labels::from([("example".to_owned(), "quickstart".to_owned())]);
    client.create_cluster(id, labels).await?;

    // The turn is prefilled into the cluster's cache once...
    let appended = client
        .append_turns(
            id,
            vec![proto::Turn::user(
                "You are a careful physics tutor. Explain why the sky is blue.",
            )],
            proto::TurnFormat::Chat,
        )
        .await?;
    println!("appended {} tokens", appended.tokens_added);

    // ...and every generation reuses it.
    let request = proto::GenerateRequest {
        cluster_id: id.to_owned(),
        max_tokens: Some(64),
        sampling: Some(proto::SamplingParams {
            temperature: 0.7,
            seed: 42,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stream = client.generate(request).await?;
    while let Some(event) = stream.next_event().await {
        match event? {
            GenerateEvent::Token(t) => {
                print!("{}", t.text);
                std::io::stdout().flush()?;
            }
            GenerateEvent::Done(s) => println!(
                "\n[{} tokens reused from cache, TTFT {:.1} ms, {:.1} tok/s]",
                s.reused_tokens, s.time_to_first_token_ms, s.tokens_per_second
            ),
        }
    }
    client.delete_cluster(id).await?;
    Ok(())
}
