//! Packing typed messages into `google.protobuf.Any` and back.

use prost::{Message, Name};

use crate::{Any, Error};

/// Packs a message with its canonical type URL.
pub fn pack<M: Message + Name>(message: &M) -> Any {
    Any { type_url: M::type_url(), value: message.encode_to_vec() }
}

/// Unpacks an `Any` that must hold an `M`.
pub fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, Error> {
    let expected = M::type_url();
    if any.type_url != expected {
        return Err(Error::UnexpectedType { expected, found: any.type_url.clone() });
    }
    M::decode(any.value.as_slice()).map_err(|source| Error::Decode { type_url: expected, source })
}

/// The fully qualified message name in a type URL (`type.googleapis.com/a.b.C` → `a.b.C`).
pub fn message_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::envoy::config::cluster::v3::Cluster;
    use crate::pb::envoy::config::listener::v3::Listener;

    #[test]
    fn pack_then_unpack_round_trips() {
        let cluster = Cluster { name: "outbound|9080||reviews.default.svc.cluster.local".into(), ..Default::default() };
        let any = pack(&cluster);
        assert_eq!(any.type_url, "type.googleapis.com/envoy.config.cluster.v3.Cluster");
        assert_eq!(unpack::<Cluster>(&any).expect("a cluster"), cluster);
    }

    #[test]
    fn unpack_refuses_another_type() {
        let any = pack(&Listener::default());
        let err = unpack::<Cluster>(&any).expect_err("a listener is not a cluster");
        assert!(err.to_string().contains("envoy.config.listener.v3.Listener"), "{err}");
    }

    #[test]
    fn message_name_strips_the_prefix() {
        assert_eq!(
            message_name("type.googleapis.com/envoy.config.cluster.v3.Cluster"),
            "envoy.config.cluster.v3.Cluster"
        );
        assert_eq!(message_name("plain.Name"), "plain.Name");
    }
}
