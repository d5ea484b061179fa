//! `status`: the daemon's model, device and load.

use std::io::Write;

use super::CommandError;
use crate::client::{ClusterClient, ServerInfo};
use crate::output::Printer;

/// `status`: what the daemon says about itself.
pub async fn status<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
) -> Result<(), CommandError> {
    let info = client.server_info().await?;
    Ok(p.emit(&info, || format_server_info(&info))?)
}

/// The daemon's self-description.
pub fn format_server_info(s: &ServerInfo) -> String {
    let budget = if s.max_cache_bytes == 0 {
        "unlimited".to_owned()
    } else {
        s.max_cache_bytes.to_string()
    };
    format!(
        "semkvd {}\nmodel:       {} ({})\ndevice:      {} ({})\nclusters:    {}\ncache bytes: {} of {budget}\nqueue:       {} of {}",
        s.version,
        s.model,
        s.fingerprint,
        s.device,
        s.backend,
        s.known_clusters,
        s.cache_bytes,
        s.queue_depth,
        s.queue_capacity
    )
}
