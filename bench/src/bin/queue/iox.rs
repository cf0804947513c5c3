//! iceoryx2 (the Rust crate, 0.10) as a peer: publish-subscribe of byte slices with its own
//! loan/send API, configured like shmio's queue: the same number of buffered records per
//! subscriber, no history, no loss (no safe overflow; the publisher retries until delivered).
//! Blocking mode pairs each service with an event service: the publisher notifies after every
//! send and the subscriber sleeps on its listener when it finds nothing.
//!
//! The producer writes each record into a loaned sample (one copy, as shmio's `reserve`); the
//! subscriber reads the record in place (as shmio's zero-copy `read`), so the comparable shmio
//! figure is `shmio-bp-zerocopy`.

use iceoryx2::port::LoanError;
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

use super::peers::{Backoff, Rx, Tx};
use crate::systems::{Mode, seq_of};

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

/// Builds the publish-subscribe service `name` (same settings on every side).
fn service(
    node: &Node<ipc::Service>,
    name: &str,
    buffered: usize,
) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()> {
    let sname: ServiceName = name.try_into().expect("service name");
    node.service_builder(&sname)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .history_size(0)
        .subscriber_max_buffer_size(buffered)
        .subscriber_max_borrowed_samples(2)
        .max_subscribers(4)
        .max_publishers(1)
        .open_or_create()
        .expect("iceoryx2 publish-subscribe service")
}

fn event(
    node: &Node<ipc::Service>,
    name: &str,
) -> iceoryx2::service::port_factory::event::PortFactory<ipc::Service> {
    let sname: ServiceName = format!("{name}/ev")
        .as_str()
        .try_into()
        .expect("event name");
    node.service_builder(&sname)
        .event()
        .max_listeners(8)
        .max_notifiers(2)
        .open_or_create()
        .expect("iceoryx2 event service")
}

fn node() -> Node<ipc::Service> {
    // Without a config file iceoryx2 warns that it uses its defaults, which is what we want.
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

pub struct IoxTx {
    // Field order is drop order: ports before their services and the node.
    publisher: Pub,
    notifier: Option<Notifier<ipc::Service>>,
    _node: Node<ipc::Service>,
}

impl Tx for IoxTx {
    fn send(&mut self, rec: &[u8]) {
        let mut b = Backoff::default();
        let sample = loop {
            match self.publisher.loan_slice_uninit(rec.len()) {
                Ok(s) => break s,
                // Every sample is in some subscriber's buffer: wait for one to come back.
                Err(LoanError::OutOfMemory) | Err(LoanError::ExceedsMaxLoans) => b.snooze(),
                Err(e) => panic!("iceoryx2 loan: {e:?}"),
            }
        };
        let sample = sample.write_from_slice(rec);
        sample.send().expect("iceoryx2 send");
        if let Some(n) = &self.notifier {
            n.notify().expect("iceoryx2 notify");
        }
    }
}

pub struct IoxRx {
    subscriber: Sub,
    listener: Option<Listener<ipc::Service>>,
    _node: Node<ipc::Service>,
}

impl Rx for IoxRx {
    fn recv(&mut self, _buf: &mut [u8]) -> u64 {
        let mut b = Backoff::default();
        loop {
            if let Some(s) = self.subscriber.receive().expect("iceoryx2 receive") {
                // Read in place: the record's first bytes carry its sequence number.
                return seq_of(s.payload());
            }
            match &self.listener {
                Some(l) => {
                    l.blocking_wait(|_| {}).expect("iceoryx2 listener");
                }
                None => b.snooze(),
            }
        }
    }
}

/// The publisher of channel `name`, for up to 4 subscribers each buffering `buffered` records
/// of `size` bytes.
pub fn tx(name: &str, size: usize, buffered: usize, mode: Mode) -> IoxTx {
    let node = node();
    let svc = service(&node, name, buffered);
    let publisher = svc
        .publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .max_loaned_samples(2)
        .create()
        .expect("iceoryx2 publisher");
    let notifier = (mode == Mode::Block).then(|| {
        event(&node, name)
            .notifier_builder()
            .create()
            .expect("iceoryx2 notifier")
    });
    IoxTx {
        publisher,
        notifier,
        _node: node,
    }
}

/// A subscriber of channel `name`.
pub fn rx(name: &str, buffered: usize, mode: Mode) -> IoxRx {
    let node = node();
    let svc = service(&node, name, buffered);
    let subscriber = svc
        .subscriber_builder()
        .buffer_size(buffered)
        .create()
        .expect("iceoryx2 subscriber");
    let listener = (mode == Mode::Block).then(|| {
        event(&node, name)
            .listener_builder()
            .create()
            .expect("iceoryx2 listener")
    });
    IoxRx {
        subscriber,
        listener,
        _node: node,
    }
}

/// A service name unique to this run and channel.
pub fn name(base: &str, k: usize) -> String {
    format!("shmio-bench/{base}/{k}")
}
