//! The JetStream bus: a stream per service (file storage, replicas as configured), durable
//! pull consumers with explicit acks, deduplication by `Nats-Msg-Id` (the event id) within the
//! stream's duplicate window. Redelivery delays are given with each negative ack (`nak` with a
//! delay), and the consumer's own `max_deliver` is unlimited: the consumer loop counts attempts
//! and dead-letters, so a crash in the middle of the last attempt still ends in a dead letter.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull, message::PublishMessage, stream};
use futures::StreamExt;

use crate::{Acker, BusError, ConsumerSpec, Delivery, Published, StreamSpec};

/// How long a publish waits for JetStream's acknowledgement.
pub const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries a consumer may have unacknowledged at once.
pub const ACK_PENDING_MAX: i64 = 1_024;

/// The KV bucket holding relay cursors.
pub const CURSOR_BUCKET: &str = "gureum-cursors";

/// The JetStream bus. Cheap to clone (one connection, shared).
#[derive(Clone, Debug)]
pub struct NatsBus {
    jetstream: jetstream::Context,
    /// Replicas of the buckets the bus creates itself (cursors).
    replicas: usize,
}

impl NatsBus {
    /// Connects to NATS at `url` (e.g. `nats://127.0.0.1:4222`; several servers comma-separated).
    pub async fn connect(url: &str) -> Result<NatsBus, BusError> {
        let servers = server_addrs(url)?;
        let client = async_nats::ConnectOptions::new()
            .name("gureum")
            .connect(servers)
            .await
            .map_err(|e| BusError::Nats(format!("connect to {url}: {e}")))?;
        Ok(NatsBus::from_client(client))
    }

    /// Uses an existing connection.
    pub fn from_client(client: async_nats::Client) -> NatsBus {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(PUBLISH_ACK_TIMEOUT)
            .build(client);
        NatsBus {
            jetstream,
            replicas: 1,
        }
    }

    /// Keeps `replicas` copies of the buckets the bus creates (3 across zones).
    pub fn with_replicas(mut self, replicas: usize) -> NatsBus {
        self.replicas = replicas;
        self
    }

    /// The JetStream context (for the replicated ledger journal and KV leases).
    pub fn context(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub(crate) async fn ensure_stream(&self, spec: &StreamSpec) -> Result<(), BusError> {
        let config = stream::Config {
            name: spec.name.clone(),
            subjects: spec.subjects.clone(),
            duplicate_window: spec.duplicate_window,
            max_age: spec.max_age,
            num_replicas: spec.replicas,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            ..Default::default()
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|e| BusError::Nats(format!("stream {}: {e}", spec.name)))?;
        Ok(())
    }

    /// Publishes every message, all in flight at once, then waits for each acknowledgement in
    /// order. On an error some later messages may be stored: publishing them again is
    /// deduplicated by their ids.
    pub(crate) async fn publish_all(
        &self,
        messages: Vec<(String, String, String)>,
    ) -> Result<Vec<Published>, BusError> {
        let mut pending = Vec::with_capacity(messages.len());
        for (subject, msg_id, payload) in messages {
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(&msg_id);
            let ack = self
                .jetstream
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| nats_publish_error(&subject, &e))?;
            pending.push((subject, ack));
        }
        let mut out = Vec::with_capacity(pending.len());
        for (subject, ack) in pending {
            let ack = ack.await.map_err(|e| nats_publish_error(&subject, &e))?;
            out.push(Published {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            });
        }
        Ok(out)
    }

    /// The cursor bucket.
    async fn cursors(&self) -> Result<jetstream::kv::Store, BusError> {
        ensure_kv_bucket(
            &self.jetstream,
            CURSOR_BUCKET,
            Duration::ZERO,
            self.replicas,
        )
        .await
        .map_err(|e| BusError::Nats(format!("cursor bucket: {e}")))
    }

    pub(crate) async fn load_cursor(&self, name: &str) -> Result<Option<u64>, BusError> {
        let entry = self.cursors().await?.get(name).await;
        let entry = entry.map_err(|e| BusError::Nats(format!("cursor {name}: {e}")))?;
        entry
            .map(|bytes| {
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| BusError::Invalid {
                        what: "stored cursor",
                        value: name.to_owned(),
                    })
            })
            .transpose()
    }

    pub(crate) async fn save_cursor(&self, name: &str, position: u64) -> Result<(), BusError> {
        let saved = self
            .cursors()
            .await?
            .put(name, position.to_string().into())
            .await;
        saved.map_err(|e| BusError::Nats(format!("cursor {name}: {e}")))?;
        Ok(())
    }

    pub(crate) async fn consumer(&self, spec: &ConsumerSpec) -> Result<NatsConsumer, BusError> {
        let stream = self
            .jetstream
            .get_stream(&spec.stream)
            .await
            .map_err(|e| BusError::Nats(format!("stream {}: {e}", spec.stream)))?;
        let config = pull::Config {
            durable_name: Some(spec.durable.clone()),
            filter_subject: spec.filter_subject.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: -1,
            max_ack_pending: ACK_PENDING_MAX,
            ..Default::default()
        };
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| BusError::Nats(format!("consumer {}: {e}", spec.durable)))?;
        Ok(NatsConsumer { consumer })
    }
}

/// Makes sure the KV bucket exists and opens it. The bucket's stream is created in the layout
/// JetStream's KV uses (what `create_key_value` would make) with a plain stream request, which
/// also works on servers older than the client's KV management API (NATS 2.9). `max_age`
/// zero keeps values forever.
pub async fn ensure_kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<jetstream::kv::Store, String> {
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| e.to_string())?;
    js.get_key_value(bucket).await.map_err(|e| e.to_string())
}

/// Parses a comma-separated list of NATS server URLs.
pub fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, BusError> {
    urls.split(',')
        .map(|u| {
            u.trim().parse().map_err(|e| BusError::Invalid {
                what: "NATS server URL",
                value: format!("{u}: {e}"),
            })
        })
        .collect()
}

fn nats_publish_error(subject: &str, e: &jetstream::context::PublishError) -> BusError {
    if matches!(
        e.kind(),
        jetstream::context::PublishErrorKind::StreamNotFound
    ) {
        BusError::NoStream(subject.to_owned())
    } else {
        BusError::Nats(format!("publish on {subject}: {e}"))
    }
}

/// A durable pull consumer on JetStream.
pub struct NatsConsumer {
    consumer: jetstream::consumer::Consumer<pull::Config>,
}

impl std::fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer").finish_non_exhaustive()
    }
}

impl NatsConsumer {
    pub(crate) async fn fetch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        // JetStream refuses expiries under a millisecond; a zero wait means "what is there now".
        let expires = wait.max(Duration::from_millis(10));
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(expires)
            .messages()
            .await
            .map_err(|e| BusError::Nats(format!("fetch: {e}")))?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| BusError::Nats(format!("fetch: {e}")))?;
            let attempt = message
                .info()
                .map_err(|e| BusError::Nats(format!("delivery metadata: {e}")))?
                .delivered;
            let payload = String::from_utf8_lossy(&message.payload).into_owned();
            out.push(Delivery {
                subject: message.subject.to_string(),
                payload,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                acker: Acker::Nats(Box::new(message)),
            });
        }
        Ok(out)
    }
}

/// Acknowledges and waits for the server to confirm, so a returned ack is not redelivered.
pub(crate) async fn ack(message: &jetstream::Message) -> Result<(), BusError> {
    message
        .double_ack()
        .await
        .map_err(|e| BusError::Nats(format!("ack: {e}")))
}

pub(crate) async fn nak(message: &jetstream::Message, delay: Duration) -> Result<(), BusError> {
    message
        .ack_with(AckKind::Nak(Some(delay)))
        .await
        .map_err(|e| BusError::Nats(format!("nak: {e}")))
}
