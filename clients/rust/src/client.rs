//! [`Client`]: one typed async method per RPC of `proto/semkv/v1`, over one tonic
//! channel, and [`ConnectOptions`], how it connects and calls.
//!
//! Methods take `&self`; a call clones the channel's handle, so one client can serve
//! many tasks at once (clone it to move it into a task). Requests and answers are the
//! generated [`proto`] messages; the methods only spare the request wrapping and map
//! failures to [`ClientError`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{error_chain, ClientError};
use crate::generate::GenerateStream;
use crate::proto;
use crate::proto::sem_kv_client::SemKvClient;

/// The address `semkvd` listens on by default.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// Cluster labels (and label selectors): key → value.
pub type Labels = BTreeMap<String, String>;

/// How a [`Client`] connects and calls.
///
/// This is also where TLS settings will go once the daemon serves TLS; the struct is
/// `#[non_exhaustive]` so that adding them is not a breaking change. Start from
/// [`ConnectOptions::default`]:
///
/// ```
/// use std::time::Duration;
/// let options = semkv_client::ConnectOptions::default()
///     .with_connect_timeout(Duration::from_secs(1))
///     .with_request_timeout(Duration::from_secs(30));
/// assert_eq!(options.busy_retries, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// How long connecting may take (default 5 s).
    pub connect_timeout: Duration,
    /// How long one call may take (default: no limit). For
    /// [`Client::generate`] it bounds the time until the stream opens, not the
    /// whole generation.
    pub request_timeout: Option<Duration>,
    /// How many times a call the daemon refused as busy is tried again, with
    /// back-off from 100 ms doubling to at most 5 s (default 0: not retried). A busy
    /// daemon did not admit the request, so a retry cannot run it twice.
    pub busy_retries: u32,
    /// Largest message accepted from the daemon (default 64 MiB).
    pub max_message_bytes: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            busy_retries: 0,
            max_message_bytes: 64 << 20,
        }
    }
}

impl ConnectOptions {
    /// Sets [`ConnectOptions::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ConnectOptions::request_timeout`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sets [`ConnectOptions::busy_retries`].
    pub fn with_busy_retries(mut self, retries: u32) -> Self {
        self.busy_retries = retries;
        self
    }
}

/// `addr` as a URI: `host:port` gets `http://` in front.
///
/// ```
/// assert_eq!(semkv_client::normalize_addr("127.0.0.1:50051"), "http://127.0.0.1:50051");
/// ```
pub fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// A connection to one `semkvd`.
///
/// ```no_run
/// # async fn example() -> Result<(), semkv_client::ClientError> {
/// let client = semkv_client::Client::connect("127.0.0.1:50051").await?;
/// println!("{}", client.server_info().await?.model);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: SemKvClient<Channel>,
    addr: String,
    options: ConnectOptions,
}

impl Client {
    /// Connects to the daemon at `addr` (`http://host:port` or `host:port`) with the
    /// default [`ConnectOptions`].
    ///
    /// Fails with [`ClientError::Connect`] when nothing answers there.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ConnectOptions::default()).await
    }

    /// Connects to the daemon at `addr` with `options`.
    pub async fn connect_with(addr: &str, options: ConnectOptions) -> Result<Client, ClientError> {
        let uri = normalize_addr(addr);
        let mut endpoint =
            Endpoint::from_shared(uri.clone()).map_err(|e| ClientError::InvalidAddress {
                addr: uri.clone(),
                message: e.to_string(),
            })?;
        endpoint = endpoint
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        if let Some(t) = options.request_timeout {
            endpoint = endpoint.timeout(t);
        }
        let channel = endpoint.connect().await.map_err(|e| ClientError::Connect {
            addr: uri.clone(),
            message: error_chain(&e),
        })?;
        Ok(Client {
            inner: SemKvClient::new(channel).max_decoding_message_size(options.max_message_bytes),
            addr: uri,
            options,
        })
    }

    /// The address this client talks to, as a URI (`http://host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The options it was connected with.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The generated tonic client on the same channel, for raw calls.
    pub fn raw(&self) -> SemKvClient<Channel> {
        self.inner.clone()
    }

    /// Runs `call` on a fresh handle of the channel, again while the daemon answers
    /// busy and retries are left (see [`ConnectOptions::busy_retries`]).
    async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(SemKvClient<Channel>) -> Fut + Send,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
        T: Send,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match call(self.inner.clone()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(status) => {
                    let err = ClientError::from_status(status, &self.addr);
                    if err.is_busy() && attempt < self.options.busy_retries {
                        attempt += 1;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// The daemon's version, model, device, memory and queue state.
    pub async fn server_info(&self) -> Result<proto::ServerInfo, ClientError> {
        self.call(|mut c| async move { c.get_server_info(proto::GetServerInfoRequest {}).await })
            .await
    }

    /// Creates an empty cluster `id` with `labels`. `ALREADY_EXISTS` if the id is taken.
    pub async fn create_cluster(
        &self,
        id: &str,
        labels: Labels,
    ) -> Result<proto::Cluster, ClientError> {
        let req = proto::CreateClusterRequest {
            cluster_id: id.to_owned(),
            labels: hash_map(labels),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.create_cluster(req).await }
        })
        .await
    }

    /// Describes one cluster. `NOT_FOUND` if unknown.
    pub async fn get_cluster(&self, id: &str) -> Result<proto::Cluster, ClientError> {
        let req = proto::GetClusterRequest {
            cluster_id: id.to_owned(),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.get_cluster(req).await }
        })
        .await
    }

    /// Lists the clusters carrying every label of `selector` (all when it is empty),
    /// ordered by id: every page, one [`Client::list_clusters_page`] after another.
    pub async fn list_clusters(
        &self,
        selector: Labels,
    ) -> Result<Vec<proto::Cluster>, ClientError> {
        let mut clusters = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.list_clusters_page(selector.clone(), 0, &token).await?;
            clusters.extend(page.clusters);
            if page.next_page_token.is_empty() {
                return Ok(clusters);
            }
            token = page.next_page_token;
        }
    }

    /// One page of [`Client::list_clusters`]: at most `page_size` clusters (0: the
    /// daemon's default, 100; at most 1000) after `page_token` (empty: the first page;
    /// else the `next_page_token` of the previous page, which is empty after the last).
    ///
    /// ```no_run
    /// # async fn example(client: semkv_client::Client) -> Result<(), semkv_client::ClientError> {
    /// let mut token = String::new();
    /// loop {
    ///     let page = client.list_clusters_page(Default::default(), 500, &token).await?;
    ///     for c in &page.clusters {
    ///         println!("{}", c.id);
    ///     }
    ///     if page.next_page_token.is_empty() {
    ///         break;
    ///     }
    ///     token = page.next_page_token;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_clusters_page(
        &self,
        selector: Labels,
        page_size: u32,
        page_token: &str,
    ) -> Result<proto::ListClustersResponse, ClientError> {
        let req = proto::ListClustersRequest {
            label_selector: hash_map(selector),
            page_size,
            page_token: page_token.to_owned(),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.list_clusters(req).await }
        })
        .await
    }

    /// Deletes a cluster, its stored turns, tokens and cache. `NOT_FOUND` if unknown.
    pub async fn delete_cluster(&self, id: &str) -> Result<(), ClientError> {
        let req = proto::DeleteClusterRequest {
            cluster_id: id.to_owned(),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.delete_cluster(req).await }
        })
        .await?;
        Ok(())
    }

    /// Creates cluster `new_id` holding an independent copy of `source`'s turns and
    /// cache, labelled `labels` (the source's labels when empty). `NOT_FOUND` is about
    /// the source, `ALREADY_EXISTS` about the new id.
    pub async fn fork_cluster(
        &self,
        source: &str,
        new_id: &str,
        labels: Labels,
    ) -> Result<proto::Cluster, ClientError> {
        let req = proto::ForkClusterRequest {
            source_cluster_id: source.to_owned(),
            new_cluster_id: new_id.to_owned(),
            labels: hash_map(labels),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.fork_cluster(req).await }
        })
        .await
    }

    /// Appends `turns` to cluster `id` and prefills them into its cache; durable
    /// when it returns.
    pub async fn append_turns(
        &self,
        id: &str,
        turns: Vec<proto::Turn>,
        format: proto::TurnFormat,
    ) -> Result<proto::AppendTurnsResponse, ClientError> {
        let req = proto::AppendTurnsRequest {
            cluster_id: id.to_owned(),
            turns,
            format: format as i32,
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.append_turns(req).await }
        })
        .await
    }

    /// Scores `request.continuation` after the cluster (and `request.turns`):
    /// per-token log-probabilities, on a copy of the cache (the cluster is unchanged).
    pub async fn score(
        &self,
        request: proto::ScoreRequest,
    ) -> Result<proto::ScoreResponse, ClientError> {
        self.call(|mut c| {
            let req = request.clone();
            async move { c.score(req).await }
        })
        .await
    }

    /// Starts a generation; its token deltas and then its summary arrive on the
    /// returned [`GenerateStream`]. Dropping the stream cancels the generation.
    pub async fn generate(
        &self,
        request: proto::GenerateRequest,
    ) -> Result<GenerateStream, ClientError> {
        let stream = self
            .call(|mut c| {
                let req = request.clone();
                async move { c.generate(req).await }
            })
            .await?;
        Ok(GenerateStream::new(stream, self.addr.clone()))
    }

    /// Drops the cluster's cache from memory (it stays on disk and reloads on next
    /// use).
    pub async fn evict_cluster(
        &self,
        id: &str,
    ) -> Result<proto::EvictClusterResponse, ClientError> {
        let req = proto::EvictClusterRequest {
            cluster_id: id.to_owned(),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.evict_cluster(req).await }
        })
        .await
    }

    /// Writes the cluster's cache as one fresh snapshot (compacting per-append
    /// records).
    pub async fn persist_cluster(
        &self,
        id: &str,
    ) -> Result<proto::PersistClusterResponse, ClientError> {
        let req = proto::PersistClusterRequest {
            cluster_id: id.to_owned(),
        };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.persist_cluster(req).await }
        })
        .await
    }

    /// The scheduler's most recent steps, oldest first: at most `limit` of them
    /// (0: all that are kept).
    pub async fn scheduler_trace(
        &self,
        limit: u32,
    ) -> Result<proto::GetSchedulerTraceResponse, ClientError> {
        self.call(|mut c| async move {
            c.get_scheduler_trace(proto::GetSchedulerTraceRequest { limit })
                .await
        })
        .await
    }
}

fn hash_map(labels: Labels) -> HashMap<String, String> {
    labels.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(normalize_addr("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(normalize_addr(" http://h:1 "), "http://h:1");
        assert_eq!(normalize_addr("https://h:1"), "https://h:1");
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_a_connect_error() {
        let err = Client::connect("127.0.0.1:1").await.unwrap_err();
        match &err {
            ClientError::Connect { addr, .. } => assert_eq!(addr, "http://127.0.0.1:1"),
            other => panic!("{other:?}"),
        }
        assert!(err.is_unreachable());
        let err = Client::connect("http://bad host").await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidAddress { .. }), "{err:?}");
    }
}
