//! ListClusters paging, and the status codes of requests tonic refuses before any
//! handler runs (oversized, not protobuf), against a real daemon (tests/common).

mod common;

use std::collections::HashMap;

use common::*;
use futures_util::stream::{self, StreamExt};
use prost::bytes::{Buf, BufMut};
use semkv::proto;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;
use tonic::{Code, Status};

/// Cluster `i`'s id: ids sort like the numbers.
fn id(i: usize) -> String {
    format!("c-{i:03}")
}

/// Creates clusters `0..n`, eight at a time; the even ones labelled `parity=even`.
async fn create_many(c: &Client, n: usize) {
    stream::iter(0..n)
        .map(|i| {
            let mut c = c.clone();
            async move {
                let parity = if i % 2 == 0 { "even" } else { "odd" };
                c.create_cluster(proto::CreateClusterRequest {
                    cluster_id: id(i),
                    labels: HashMap::from([("parity".to_owned(), parity.to_owned())]),
                })
                .await
                .expect("create");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

async fn page(
    c: &mut Client,
    selector: &[(&str, &str)],
    page_size: u32,
    page_token: &str,
) -> Result<proto::ListClustersResponse, Status> {
    c.list_clusters(proto::ListClustersRequest {
        label_selector: selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        page_size,
        page_token: page_token.into(),
    })
    .await
    .map(|r| r.into_inner())
}

/// Every page from the first: the clusters of each.
async fn walk(
    c: &mut Client,
    selector: &[(&str, &str)],
    page_size: u32,
) -> Vec<Vec<proto::Cluster>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let p = page(c, selector, page_size, &token).await.expect("list");
        pages.push(p.clusters);
        if p.next_page_token.is_empty() {
            return pages;
        }
        assert_eq!(
            Some(&p.next_page_token),
            pages.last().unwrap().last().map(|c| &c.id),
            "the token is the page's last id"
        );
        token = p.next_page_token;
    }
}

fn ids(pages: &[Vec<proto::Cluster>]) -> Vec<String> {
    pages.iter().flatten().map(|c| c.id.clone()).collect()
}

fn sizes(pages: &[Vec<proto::Cluster>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

fn invalid(status: Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}:")),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_clusters_pages_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let n = 250;
    create_many(&c, n).await;
    let all: Vec<String> = (0..n).map(id).collect();

    // Default page size: 100, 100, 50; every id exactly once, in order.
    let pages = walk(&mut c, &[], 0).await;
    assert_eq!(sizes(&pages), [100, 100, 50]);
    assert_eq!(ids(&pages), all);
    // Other sizes, down to one cluster a page.
    assert_eq!(sizes(&walk(&mut c, &[], 1000).await), [250]);
    assert_eq!(sizes(&walk(&mut c, &[], 125).await), [125, 125]);
    let ones = walk(&mut c, &[], 1).await;
    assert_eq!((ones.len(), ids(&ones)), (250, all.clone()));

    // A label selector pages over the matching clusters only.
    let even = walk(&mut c, &[("parity", "even")], 50).await;
    assert_eq!(sizes(&even), [50, 50, 25]);
    assert_eq!(ids(&even), (0..n).step_by(2).map(id).collect::<Vec<_>>());
    assert!(walk(&mut c, &[("parity", "none")], 0).await == [Vec::new()]);

    // semkv-client's list follows the pages (the CLI's `cluster list` uses it).
    let client = semkv_client::Client::connect(&daemon.addr).await.unwrap();
    let listed = client.list_clusters(Default::default()).await.unwrap();
    assert_eq!(listed.into_iter().map(|c| c.id).collect::<Vec<_>>(), all);
    let selector = semkv_client::Labels::from([("parity".into(), "odd".into())]);
    let odd = client.list_clusters(selector.clone()).await.unwrap();
    assert_eq!(odd.len(), 125);
    let one = client.list_clusters_page(selector, 7, "").await.unwrap();
    assert_eq!(
        (one.clusters.len(), one.next_page_token.as_str()),
        (7, "c-013")
    );

    // A token continues after its id, also when that cluster is gone meanwhile.
    let first = page(&mut c, &[], 10, "").await.unwrap();
    c.delete_cluster(proto::DeleteClusterRequest { cluster_id: id(9) })
        .await
        .unwrap();
    let next = page(&mut c, &[], 3, &first.next_page_token).await.unwrap();
    assert_eq!(ids(&[next.clusters]), [id(10), id(11), id(12)]);

    // Bad sizes and tokens name their field.
    invalid(page(&mut c, &[], 1001, "").await.unwrap_err(), "page_size");
    for token in ["a/b", "-x", &"x".repeat(65)] {
        invalid(page(&mut c, &[], 0, token).await.unwrap_err(), "page_token");
    }
    assert!(daemon.terminate());

    // A cluster with damaged metadata takes its place in the id order.
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        let key = format!("m/{}", id(150));
        let mut v = db.get(&key).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 0x20;
        db.insert(key.as_str(), v).unwrap();
        db.flush().unwrap();
    }
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    let pages = walk(&mut c, &[], 0).await;
    let expected: Vec<String> = (0..n).filter(|&i| i != 9).map(id).collect();
    assert_eq!(sizes(&pages), [100, 100, 49]);
    assert_eq!(ids(&pages), expected);
    let damaged: Vec<&proto::Cluster> = pages
        .iter()
        .flatten()
        .filter(|c| !c.damage.is_empty())
        .collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].id, id(150));
    assert_eq!(damaged[0].residency, proto::Residency::Damaged as i32);
    // With a selector it is left out (its labels cannot be read).
    let even = walk(&mut c, &[("parity", "even")], 0).await;
    assert_eq!(ids(&even).len(), 124);
    daemon.kill9();
}

/// Sends and receives message bodies as they are: bytes that need not be protobuf.
#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// `body` sent as the request message of `method`, over raw HTTP/2 gRPC.
async fn raw_call(addr: &str, method: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(method),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_blame_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let mut c = daemon.client().await;
    create(&mut c, "target").await;
    let append = |bytes: usize| proto::AppendTurnsRequest {
        cluster_id: "target".into(),
        turns: vec![user(&"x".repeat(bytes))],
        format: proto::TurnFormat::Chat as i32,
    };

    // Past the 16 MiB request limit: RESOURCE_EXHAUSTED, naming the limit.
    let err = c.append_turns(append(17 << 20)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("16777216"), "{err:?}");
    // Under it (past tonic's default 4 MiB) the request is read and validated.
    invalid(
        c.append_turns(append(5 << 20)).await.unwrap_err(),
        "turns[0].text",
    );

    // Bytes that are not a protobuf message: INVALID_ARGUMENT, for unary and
    // server-streaming methods alike.
    let garbage = vec![0xff; 16];
    for method in [
        "/semkv.v1.SemKv/AppendTurns",
        "/semkv.v1.SemKv/Generate",
        "/semkv.v1.SemKv/ListClusters",
    ] {
        let err = raw_call(&daemon.addr, method, garbage.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{method}: {err:?}");
        assert!(
            err.message().contains("failed to decode Protobuf message"),
            "{method}: {err:?}"
        );
    }
    // A valid body over the same raw path works (the codec is not the problem).
    use prost::Message;
    let body = proto::GetClusterRequest {
        cluster_id: "target".into(),
    }
    .encode_to_vec();
    let reply = raw_call(&daemon.addr, "/semkv.v1.SemKv/GetCluster", body)
        .await
        .expect("a well-formed raw request");
    assert_eq!(proto::Cluster::decode(&reply[..]).unwrap().id, "target");

    // The daemon's own errors keep their codes.
    let err = c
        .get_cluster(proto::GetClusterRequest {
            cluster_id: "missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    daemon.kill9();
}
