//! The registry restarts a cluster actor that dies, from its persisted state, while
//! the other clusters keep their actors. In process, with the real actors, the tiny
//! model and a sled store in a temporary directory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use semkv::actors::cluster::ClusterMsg;
use semkv::actors::model::{self, ModelArgs, ModelMsg, ModelSettings};
use semkv::actors::registry::{Registry, RegistryArgs, RegistryMsg};
use semkv::actors::{ask, SharedStatus, TurnFormat};
use semkv::store::{ClusterMeta, Store};
use semkv_engine::device::DeviceChoice;
use semkv_engine::generate::chat::{Role, Turn};
use semkv_engine::{Engine, LoadOptions};

async fn get(registry: &ActorRef<RegistryMsg>, id: &str) -> ActorRef<ClusterMsg> {
    let id = semkv::cluster_id::ClusterId::parse(id).unwrap();
    ask(registry, |reply| RegistryMsg::Get { id, reply })
        .await
        .unwrap()
        .unwrap()
}

async fn append(actor: &ActorRef<ClusterMsg>, text: &str) -> usize {
    let turns = vec![Turn {
        role: Role::User,
        text: text.into(),
    }];
    let (client, _present) = tokio::sync::mpsc::unbounded_channel();
    ask(actor, |reply| ClusterMsg::Append {
        turns,
        format: TurnFormat::Chat,
        client,
        reply,
    })
    .await
    .unwrap()
    .unwrap()
    .total_tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_cluster_actor_is_restarted_from_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let model_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma3-bf16");
    let (model, _thread) = model::spawn(ModelArgs {
        loader: Box::new(move || {
            Engine::load_dir(
                &model_dir,
                &LoadOptions {
                    device: DeviceChoice::Cpu,
                    ..Default::default()
                },
            )
        }),
        settings: ModelSettings {
            max_cache_bytes: 0,
            prefill_chunk: 32,
            mlx_cache_limit: None,
            scheduler: Default::default(),
        },
        status: Arc::new(SharedStatus::default()),
    })
    .await
    .unwrap();
    let info = ask(&model, |reply| ModelMsg::Info { reply }).await.unwrap();
    let (registry, _) = Actor::spawn(
        None,
        Registry,
        RegistryArgs {
            store: store.clone(),
            model: model::ModelHandle::new(model.clone()),
            tokenizer: info.tokenizer,
            chat: info.chat,
            max_context: info.max_positions,
        },
    )
    .await
    .unwrap();
    for id in ["crashy", "steady"] {
        let meta = ClusterMeta::new(id, BTreeMap::new());
        ask(&registry, |reply| RegistryMsg::Create { meta, reply })
            .await
            .unwrap()
            .unwrap();
    }
    let crashy = get(&registry, "crashy").await;
    let steady = get(&registry, "steady").await;
    let first = append(&crashy, "before the crash").await;
    append(&steady, "unaffected").await;

    crashy.kill();
    let mut restarted = false;
    for _ in 0..100 {
        let stats = ask(&registry, |reply| RegistryMsg::Stats { reply })
            .await
            .unwrap();
        if stats.restarts == 1 {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(restarted, "the registry did not restart the actor");

    let again = get(&registry, "crashy").await;
    assert_ne!(
        again.get_id(),
        crashy.get_id(),
        "a new actor serves the cluster"
    );
    let total = append(&again, "after the crash").await;
    assert!(
        total > first,
        "the restarted actor continued from the stored state"
    );
    assert_eq!(store.meta("crashy").unwrap().unwrap().turns, 2);
    assert_eq!(get(&registry, "steady").await.get_id(), steady.get_id());
}
